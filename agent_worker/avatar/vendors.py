"""Vendor avatars: a hosted avatar (Tavus, LiveAvatar, Simli, Beyond Presence, Anam) driven
through its LiveKit plugin, in place of the local renderer.

The plugins are optional (`pip install 'podium[avatars]'`), so each is imported by name when
asked for; `check_vendor` turns a missing plugin or key into one start-up error, and
`start_vendor_avatar` turns every run-time failure into `VendorAvatarError`, leaving the
session as it was so the caller can fall back to the local renderer.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
)
from livekit.agents.voice.avatar import AvatarSession
from livekit.agents.voice.io import AudioOutput
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

VENDORS: tuple[str, ...] = ("tavus", "liveavatar", "simli", "bey", "anam")
_PLUGIN_VERSION = "1.8.9"  # the livekit-agents release every plugin is pinned to
_EXTRA = "pip install 'podium[avatars]'"

# One retry, soon: the join timeout bounds the whole start, and the plugins' default
# (3 retries 2 s apart) would spend it retrying a vendor that is down.
_CONN_OPTIONS = APIConnectOptions(max_retry=1, retry_interval=0.5, timeout=5.0)


class AvatarConfigError(ValueError):
    """The vendor avatar cannot start as configured: unknown vendor, plugin or key missing."""


class VendorAvatarError(RuntimeError):
    """The vendor failed at run time: its API refused or did not answer, or its avatar did
    not join the room in time."""


class VendorAvatarSettings(BaseSettings):
    """Each vendor's keys and ids, as its plugin's constructor names them. A ``*_api_url``
    left unset means the vendor's public API."""

    model_config = SettingsConfigDict(
        env_prefix="PODIUM_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    tavus_api_key: SecretStr | None = None
    tavus_face_id: str | None = None  # unset: Tavus's stock face
    tavus_pal_id: str | None = None  # unset: Tavus's stock PAL, in echo mode
    tavus_api_url: str | None = None

    liveavatar_api_key: SecretStr | None = None
    liveavatar_avatar_id: str | None = None
    liveavatar_api_url: str | None = None
    liveavatar_is_sandbox: bool = False
    liveavatar_video_quality: Literal["very_high", "high", "medium", "low"] | None = None

    simli_api_key: SecretStr | None = None
    simli_face_id: str | None = None
    simli_emotion_id: str | None = None  # unset: the plugin's default ("happy")
    # Simli ends a session after this long, or this long without speech; its defaults
    # (600 s, 30 s) would drop the avatar mid-presentation or while a user reads a slide.
    simli_max_session_seconds: int = 3600
    simli_max_idle_seconds: int = 300
    simli_api_url: str | None = None

    bey_api_key: SecretStr | None = None
    bey_avatar_id: str | None = None  # unset: Beyond Presence's stock avatar
    bey_api_url: str | None = None

    anam_api_key: SecretStr | None = None
    anam_avatar_id: str | None = None
    anam_avatar_name: str = "Podium presenter"
    anam_avatar_model: str | None = None
    anam_api_url: str | None = None

    avatar_join_timeout_seconds: float = 15.0


def _opt(value: str | None) -> Any:
    """A setting left unset becomes the plugin's own default."""
    return NOT_GIVEN if value is None else value


def _key(value: SecretStr | None) -> str:
    assert value is not None  # check_vendor ran first
    return value.get_secret_value()


def _build_tavus(plugin: ModuleType, s: VendorAvatarSettings) -> AvatarSession[Any]:
    return plugin.AvatarSession(  # type: ignore[no-any-return]
        api_key=_key(s.tavus_api_key),
        face_id=_opt(s.tavus_face_id),
        pal_id=_opt(s.tavus_pal_id),
        api_url=_opt(s.tavus_api_url),
        conn_options=_CONN_OPTIONS,
    )


def _build_liveavatar(plugin: ModuleType, s: VendorAvatarSettings) -> AvatarSession[Any]:
    return plugin.AvatarSession(  # type: ignore[no-any-return]
        api_key=_key(s.liveavatar_api_key),
        avatar_id=_opt(s.liveavatar_avatar_id),
        api_url=_opt(s.liveavatar_api_url),
        is_sandbox=s.liveavatar_is_sandbox,
        video_quality=_opt(s.liveavatar_video_quality),
        conn_options=_CONN_OPTIONS,
    )


def _build_simli(plugin: ModuleType, s: VendorAvatarSettings) -> AvatarSession[Any]:
    assert s.simli_face_id is not None
    config = plugin.SimliConfig(
        api_key=_key(s.simli_api_key),
        face_id=s.simli_face_id,
        max_session_length=s.simli_max_session_seconds,
        max_idle_time=s.simli_max_idle_seconds,
        **({"emotion_id": s.simli_emotion_id} if s.simli_emotion_id else {}),
    )
    return plugin.AvatarSession(  # type: ignore[no-any-return]
        simli_config=config, api_url=_opt(s.simli_api_url), conn_options=_CONN_OPTIONS
    )


def _build_bey(plugin: ModuleType, s: VendorAvatarSettings) -> AvatarSession[Any]:
    return plugin.AvatarSession(  # type: ignore[no-any-return]
        api_key=_key(s.bey_api_key),
        avatar_id=_opt(s.bey_avatar_id),
        api_url=_opt(s.bey_api_url),
        conn_options=_CONN_OPTIONS,
    )


def _build_anam(plugin: ModuleType, s: VendorAvatarSettings) -> AvatarSession[Any]:
    assert s.anam_avatar_id is not None
    persona = plugin.PersonaConfig(
        name=s.anam_avatar_name, avatarId=s.anam_avatar_id, avatarModel=s.anam_avatar_model
    )
    return plugin.AvatarSession(  # type: ignore[no-any-return]
        persona_config=persona,
        api_key=_key(s.anam_api_key),
        api_url=_opt(s.anam_api_url),
        conn_options=_CONN_OPTIONS,
    )


@dataclass(frozen=True)
class _Vendor:
    module: str
    required: tuple[str, ...]  # VendorAvatarSettings fields that must be set
    build: Callable[[ModuleType, VendorAvatarSettings], AvatarSession[Any]]

    @property
    def requirement(self) -> str:
        return f"livekit-plugins-{self.module.rsplit('.', 1)[1]}=={_PLUGIN_VERSION}"


_SPECS: dict[str, _Vendor] = {
    "tavus": _Vendor("livekit.plugins.tavus", ("tavus_api_key",), _build_tavus),
    "liveavatar": _Vendor(
        "livekit.plugins.liveavatar",
        ("liveavatar_api_key", "liveavatar_avatar_id"),
        _build_liveavatar,
    ),
    "simli": _Vendor("livekit.plugins.simli", ("simli_api_key", "simli_face_id"), _build_simli),
    "bey": _Vendor("livekit.plugins.bey", ("bey_api_key",), _build_bey),
    "anam": _Vendor("livekit.plugins.anam", ("anam_api_key", "anam_avatar_id"), _build_anam),
}
assert tuple(_SPECS) == VENDORS


def _spec(name: str) -> _Vendor:
    if name not in _SPECS:
        raise AvatarConfigError(f"unknown avatar vendor {name!r}; allowed: {', '.join(VENDORS)}")
    return _SPECS[name]


def _plugin(spec: _Vendor) -> ModuleType | None:
    try:
        return importlib.import_module(spec.module)
    except ImportError:
        return None


def check_vendor(name: str, settings: VendorAvatarSettings | None = None) -> None:
    """Raise AvatarConfigError naming everything the vendor still needs: its plugin (the pip
    requirement to install) and its keys (the PODIUM_* variables to set)."""
    spec = _spec(name)
    settings = settings if settings is not None else VendorAvatarSettings()
    problems = []
    if _plugin(spec) is None:
        problems.append(f"its plugin is not installed ({_EXTRA}, or {spec.requirement})")
    missing = [f"PODIUM_{f.upper()}" for f in spec.required if not getattr(settings, f)]
    if missing:
        problems.append(f"set {', '.join(missing)}")
    if problems:
        raise AvatarConfigError(f"avatar vendor {name!r} cannot start: {'; '.join(problems)}")


async def start_vendor_avatar(
    name: str,
    settings: VendorAvatarSettings,
    session: AgentSession[Any],
    room: rtc.Room,
    *,
    livekit_url: str,
    livekit_api_key: str,
    livekit_api_secret: str,
) -> AvatarSession[Any]:
    """Start the vendor's avatar in ``room`` and route ``session``'s audio to it.

    Call it inside the job, with the room connected, before ``session.start()``: the plugin
    sets ``session.output.audio`` to its data-stream sink, which ``RoomIO`` then keeps (after
    the start it swaps the tail of the running chain instead). Returns once the avatar has
    joined and published video, within ``settings.avatar_join_timeout_seconds`` for the whole
    start. On any failure, closes what was started, puts the session's audio output back as it
    was (``None`` before ``session.start()``) and raises ``VendorAvatarError``.
    """
    try:
        check_vendor(name, settings)
    except AvatarConfigError as exc:
        raise VendorAvatarError(str(exc)) from exc
    if not room.isconnected():
        raise VendorAvatarError(f"{name}: the room is not connected yet")
    spec = _SPECS[name]
    plugin = _plugin(spec)
    assert plugin is not None
    before = _AudioRoute.of(session)
    timeout = settings.avatar_join_timeout_seconds
    try:
        avatar = spec.build(plugin, settings)
    except Exception as exc:
        raise VendorAvatarError(f"{name}: {_reason(exc)}") from exc

    stage = "api"
    try:
        async with asyncio.timeout(timeout):
            # Every vendor plugin's start takes the LiveKit credentials; the base class's does not.
            plugin_avatar: Any = avatar
            await plugin_avatar.start(
                session,
                room,
                livekit_url=livekit_url,
                livekit_api_key=livekit_api_key,
                livekit_api_secret=livekit_api_secret,
            )
            if _audio_tail(session) is before.tail:
                # Simli logs a refused request and returns instead of raising.
                raise VendorAvatarError("the vendor did not start a session (see its log)")
            stage = "join"
            await avatar.wait_for_join(timeout=None)
    except BaseException as exc:
        await _undo(avatar, session, before)
        if not isinstance(exc, Exception):
            raise  # cancelled: the caller is going away
        if isinstance(exc, TimeoutError):
            reason = (
                f"its API did not answer within {timeout:g} s"
                if stage == "api"
                else f"the avatar did not join the room within {timeout:g} s"
            )
        else:
            reason = _reason(exc)
        logger.warning(
            "vendor avatar failed to start", extra={"vendor": name, "stage": stage, "error": reason}
        )
        raise VendorAvatarError(f"{name}: {reason}") from exc
    logger.info("vendor avatar joined", extra={"vendor": name, "identity": avatar.avatar_identity})
    return avatar


def _reason(exc: Exception) -> str:
    if isinstance(exc, APIStatusError):
        body = str(exc.body)[:200] if exc.body else ""
        return f"its API answered {exc.status_code}" + (f": {body}" if body else "")
    if isinstance(exc, APIConnectionError):
        return f"its API is unreachable ({exc.message})"
    return str(exc) or type(exc).__name__


def _audio_tail(session: AgentSession[Any]) -> AudioOutput | None:
    sink = session.output.audio
    while sink is not None and sink.next_in_chain is not None:
        sink = sink.next_in_chain
    return sink


@dataclass(frozen=True)
class _AudioRoute:
    """Where the session's audio went before the vendor took it."""

    head: AudioOutput | None
    tail: AudioOutput | None

    @classmethod
    def of(cls, session: AgentSession[Any]) -> _AudioRoute:
        return cls(session.output.audio, _audio_tail(session))


async def _undo(
    avatar: AvatarSession[Any], session: AgentSession[Any], before: _AudioRoute
) -> None:
    sink = _audio_tail(session)
    if sink is not before.tail:
        if session.output.audio is not before.head or before.tail is None:
            session.output.audio = before.head
        else:
            session.output.replace_audio_tail(before.tail)
        # DataStreamAudioOutput has no close; its start task would wait for the avatar
        # participant for as long as the process lives.
        start_task = getattr(sink, "_start_atask", None)
        if isinstance(start_task, asyncio.Task):
            start_task.cancel()
    try:
        # Removes the avatar participant (through the job's LiveKit API) if it joined late.
        await avatar.aclose()
    except Exception:
        logger.warning("vendor avatar did not close cleanly", exc_info=True)
