"""A tenant's data policy: what is redacted before it is stored or sent, and how long each kind
of record is kept. Stored values override the settings' defaults; an unset one follows them."""

from __future__ import annotations

from typing import Literal, cast, get_args
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import NotFound
from shared.settings import ControlPlaneSettings

# The same modes as shared.redaction.Mode.
Mode = Literal["off", "mask", "drop"]
RecordKind = Literal["transcripts", "turns", "recordings", "events", "decks"]
RECORD_KINDS: tuple[RecordKind, ...] = get_args(RecordKind)
MAX_DAYS = 36_500


class RetentionDays(BaseModel):
    """Days each kind of record is kept after its session ended (decks: after upload); ``null``
    keeps it until it is deleted. 0 deletes it at the next sweep."""

    model_config = ConfigDict(extra="forbid")

    transcripts: int | None = Field(
        default=None, ge=0, le=MAX_DAYS, description="Messages, escalations, transcript webhooks."
    )
    turns: int | None = Field(default=None, ge=0, le=MAX_DAYS, description="The turn log.")
    recordings: int | None = Field(default=None, ge=0, le=MAX_DAYS, description="Audio files.")
    events: int | None = Field(
        default=None, ge=0, le=MAX_DAYS, description="Slide transitions and the event timeline."
    )
    decks: int | None = Field(default=None, ge=0, le=MAX_DAYS, description="Uploaded decks.")


class DataPolicyUpdate(BaseModel):
    """``PUT /v1/tenant/data-policy``: omitted fields take the defaults."""

    model_config = ConfigDict(extra="forbid")

    redaction: Mode | None = Field(
        default=None,
        description="'off', 'mask' (each finding replaced by its type, e.g. [PHONE]) or 'drop' "
        "(a text holding any personal data is not kept); omitted: the default.",
    )
    retention_days: RetentionDays = Field(
        default_factory=RetentionDays, description="Omitted kinds: the default."
    )


class DataPolicy(BaseModel):
    """The tenant's effective policy, and which parts of it are the defaults."""

    redaction: Mode
    retention_days: RetentionDays
    defaults: list[str] = Field(description="'redaction' and the retention kinds not chosen.")


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, settings: ControlPlaneSettings
) -> DataPolicy:
    row = await conn.fetchrow(
        """
        SELECT redaction, transcripts_days, turns_days, recordings_days, events_days, decks_days
        FROM tenant_data_policy WHERE tenant_id = $1
        """,
        tenant_id,
    )
    return _effective(dict(row) if row else {}, settings)


async def redaction_mode(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: UUID, settings: ControlPlaneSettings
) -> Mode:
    stored: Mode | None = await conn.fetchval(
        "SELECT redaction FROM tenant_data_policy WHERE tenant_id = $1", tenant_id
    )
    return stored or settings.redaction_default


async def session_redaction_mode(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: UUID, settings: ControlPlaneSettings
) -> Mode:
    """The redaction of the tenant a session belongs to."""
    stored: Mode | None = await conn.fetchval(
        """
        SELECT p.redaction FROM sessions s JOIN tenant_data_policy p USING (tenant_id)
        WHERE s.id = $1
        """,
        session_id,
    )
    return stored or settings.redaction_default


async def put(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: UUID,
    update: DataPolicyUpdate,
    settings: ControlPlaneSettings,
) -> DataPolicy:
    """Replace the tenant's policy (omitted parts follow the defaults from now on)."""
    days = update.retention_days
    try:
        await conn.execute(
            """
            INSERT INTO tenant_data_policy (tenant_id, redaction, transcripts_days, turns_days,
                                            recordings_days, events_days, decks_days)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (tenant_id) DO UPDATE SET
                redaction = EXCLUDED.redaction,
                transcripts_days = EXCLUDED.transcripts_days,
                turns_days = EXCLUDED.turns_days,
                recordings_days = EXCLUDED.recordings_days,
                events_days = EXCLUDED.events_days,
                decks_days = EXCLUDED.decks_days,
                updated_at = now()
            """,
            tenant_id,
            update.redaction,
            days.transcripts,
            days.turns,
            days.recordings,
            days.events,
            days.decks,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"Tenant {tenant_id} was not found.") from exc
    return await get(conn, tenant_id, settings)


def default_days(settings: ControlPlaneSettings, kind: RecordKind) -> int | None:
    days: int | None = getattr(settings, f"retention_{kind}_days")
    return days


def _effective(stored: dict[str, object], settings: ControlPlaneSettings) -> DataPolicy:
    defaults = [] if stored.get("redaction") else ["redaction"]
    days: dict[str, int | None] = {}
    for kind in RECORD_KINDS:
        value = stored.get(f"{kind}_days")
        if value is None:
            defaults.append(kind)
            days[kind] = default_days(settings, kind)
        else:
            days[kind] = int(str(value))
    mode = stored.get("redaction") or settings.redaction_default
    return DataPolicy(
        redaction=cast(Mode, mode),  # the column's CHECK holds it to the modes
        retention_days=RetentionDays(**days),
        defaults=defaults,
    )


def change(current: DataPolicy, redaction: str | None, retention: list[str]) -> DataPolicyUpdate:
    """The update ``podium admin data-policy`` makes: ``redaction`` and ``KIND=DAYS`` items
    ('default' for either follows the default); the rest stays as the tenant chose it."""
    chosen = {
        kind: getattr(current.retention_days, kind)
        for kind in RECORD_KINDS
        if kind not in current.defaults
    }
    for item in retention:
        kind, sep, days = item.partition("=")
        if not sep or kind not in RECORD_KINDS:
            raise ValueError(f"--retention takes KIND=DAYS, KIND one of {', '.join(RECORD_KINDS)}")
        if days == "default":
            chosen.pop(kind, None)
        elif days.isdigit() and int(days) <= MAX_DAYS:
            chosen[kind] = int(days)
        else:
            raise ValueError(f"--retention {kind}: DAYS must be 0-{MAX_DAYS} or 'default'")
    mode = None if "redaction" in current.defaults else current.redaction
    if redaction is not None:
        if redaction not in ("off", "mask", "drop", "default"):
            raise ValueError("--redaction must be 'off', 'mask', 'drop' or 'default'")
        mode = None if redaction == "default" else cast(Mode, redaction)
    return DataPolicyUpdate(redaction=mode, retention_days=RetentionDays(**chosen))
