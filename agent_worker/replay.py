"""``podium replay SESSION [--turn N] [--llm …]``: re-drive recorded turns through the presenter.

The session's turn log and transcript are read from the public API (a tenant API key). Each
chosen turn is run again in text mode: the presenter, with the conversation that preceded the
turn restored, gets the user's recorded words and answers through the chosen model. Its slide
tools are bound to the slide state the turn started from, kept here in memory: navigation
moves a local copy, search reads the deck through the API, and nothing reaches the live session.
It prints, per turn, recorded next to replayed — words, tool calls, slide changes — and a
waterfall of the recorded stage timings; ``--plot`` writes the waterfall as an image.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import httpx
import typer
from livekit.agents import AgentSession, llm
from livekit.agents.metrics import LLMMetrics
from livekit.agents.voice.events import MetricsCollectedEvent
from livekit.agents.voice.run_result import (
    ChatMessageEvent,
    FunctionCallEvent,
    FunctionCallOutputEvent,
    RunResult,
)

from shared.schemas import (
    DeckSearchHit,
    DeckSearchResult,
    Escalation,
    EscalationRequest,
    SlideAction,
    SlideContent,
    SlideState,
    StoredTurn,
)
from shared.settings import WorkerSettings

from .control_plane_client import ControlPlaneError, ControlPlaneRefused, SessionApi
from .presenter import Presenter
from .providers import build_llm
from .responder import OfflineResponder


class ReplayError(Exception):
    """The session's records could not be read."""


# -- reading the records ------------------------------------------------------------------


class Records:
    """The public API, read-only, with a tenant API key."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=15
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, **params: Any) -> Any:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ReplayError(f"the control plane at {self._http.base_url} is unreachable") from exc
        if not response.is_success:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise ReplayError(f"GET {path}: {response.status_code} {message}")
        return response.json()

    async def session(self, session_id: UUID) -> dict[str, Any]:
        found: dict[str, Any] = await self._get(f"/v1/sessions/{session_id}")
        return found

    async def turns(self, session_id: UUID) -> list[StoredTurn]:
        turns: list[StoredTurn] = []
        after = 0
        while True:
            page = await self._get(f"/v1/sessions/{session_id}/turns", after=after, limit=500)
            turns += [StoredTurn.model_validate(t) for t in page["items"]]
            if page["next_after"] is None:
                return turns
            after = page["next_after"]

    async def transcript(self, session_id: UUID) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self._get(f"/v1/sessions/{session_id}/transcript", after=after, limit=500)
            lines += page["items"]
            if page["next_after"] is None:
                return lines
            after = page["next_after"]

    async def slides(self, deck_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self._get(f"/v1/decks/{deck_id}/slides"))["slides"]
        return found

    async def search(self, deck_id: str, query: str, k: int) -> DeckSearchResult:
        found = await self._get(f"/v1/decks/{deck_id}/search", q=query, k=k)
        return DeckSearchResult(
            hits=[
                DeckSearchHit(
                    slide_index=h["slide_index"],
                    title=h["title"],
                    score=h["score"],
                    snippet=h["snippet"],
                )
                for h in found["hits"]
            ]
        )


# -- the slide tools, bound to the recorded state -----------------------------------------


class RecordedDeck(SessionApi):
    """What the presenter's tools call during a replay: a private copy of the slide state
    the turn started from; deck search through the public API; no writes anywhere."""

    def __init__(
        self,
        records: Records,
        session_id: UUID,
        deck_id: str,
        slides: list[dict[str, Any]],
        *,
        index: int,
        version: int,
    ) -> None:
        # No control-plane client: a replay must not reach the live session's internal API.
        self._records = records
        self._session_id = session_id
        self._deck_id = deck_id
        self._slides = slides
        self.index = index
        self.version = version
        self.paused = False
        self.escalations: list[EscalationRequest] = []

    def _state(self) -> SlideState:
        title = self._slides[self.index - 1].get("title") if self._slides else None
        return SlideState(
            session_id=self._session_id,
            deck_id=UUID(self._deck_id),
            index=self.index,
            count=len(self._slides),
            version=self.version,
            title=title,
            image_url=None,
            paused=self.paused,
            changed_by="replay",
            changed_at=datetime.now(UTC),
        )

    async def current_slide(self) -> SlideState:
        return self._state()

    async def change_slide(
        self,
        action: SlideAction,
        index: int | None = None,
        *,
        idempotency_key: str,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> SlideState:
        count = len(self._slides)
        target = {
            "next": self.index + 1,
            "previous": self.index - 1,
            "goto": index if index is not None else self.index,
            "first": 1,
            "last": count,
        }.get(action, self.index)
        if action == "next" and target > count:
            raise ControlPlaneRefused("no_next_slide", "This is the last slide.", status_code=409)
        if action == "previous" and target < 1:
            raise ControlPlaneRefused(
                "no_previous_slide", "This is the first slide.", status_code=409
            )
        if not 1 <= target <= count:
            raise ControlPlaneRefused(
                "slide_out_of_range",
                f"The deck has slides 1 to {count}; there is no slide {target}.",
                status_code=422,
            )
        self.index = target
        if action in ("pause", "resume"):
            self.paused = action == "pause"
        self.version += 1
        return self._state()

    async def search(self, query: str, k: int = 3) -> DeckSearchResult:
        try:
            return await self._records.search(self._deck_id, query, k)
        except ReplayError as exc:
            raise ControlPlaneError(str(exc)) from exc

    async def slide(self, index: int) -> SlideContent:
        found = self._slides[index - 1]
        return SlideContent(
            index=index, title=found.get("title"), text=found.get("text", ""), notes=None
        )

    async def escalate(self, request: EscalationRequest, *, idempotency_key: str) -> Escalation:
        self.escalations.append(request)
        return Escalation(
            escalation_id=UUID(int=0),
            session_id=self._session_id,
            reason=request.reason,
            slide_index=request.slide_index,
            last_question=request.last_question,
            attempted_answer=request.attempted_answer,
            transcript=[],
            created_at=datetime.now(UTC),
        )


# -- re-driving a turn --------------------------------------------------------------------


@dataclass
class Replayed:
    agent_text: str | None
    tool_calls: list[tuple[str, Any, str | None]]  # name, parsed arguments, output
    slide_after: int
    seconds: float
    llm_ttft: list[float] = field(default_factory=list)
    model: str = ""


def history_before(
    turn: StoredTurn, lines: list[dict[str, Any]], turns: list[StoredTurn]
) -> llm.ChatContext:
    """What the model had before the turn: the conversation up to the turn's user message (or
    its start, without one), with the tool calls and results of the turns before it, in time
    order."""
    cut = len(lines)
    if turn.user_text:
        matches = [
            i
            for i, line in enumerate(lines)
            if line["role"] == "user" and line["text"].strip() == turn.user_text.strip()
        ]
        if matches:
            cut = matches[0] if len(matches) == 1 else _nearest(matches, lines, turn)
    else:
        started = turn.started_at.timestamp()
        cut = next((i for i, line in enumerate(lines) if _at(line) > started), len(lines))
    entries: list[tuple[float, int, llm.ChatItem]] = [
        (
            _at(line),
            0,
            llm.ChatMessage(
                role=line["role"],
                content=[line["text"]],
                id=line["item_id"],
                interrupted=line["interrupted"],
            ),
        )
        for line in lines[:cut]
    ]
    for earlier in turns:
        if earlier.number >= turn.number:
            continue
        for call in earlier.tool_calls:
            if call.output is None or call.started_at is None:
                continue  # a call without its result cannot be shown to a model
            done = call.started_at + (call.duration or 0.0)
            entries.append(
                (
                    call.started_at,
                    1,
                    llm.FunctionCall(
                        call_id=call.call_id, name=call.name, arguments=call.arguments
                    ),
                )
            )
            entries.append(
                (
                    done,
                    2,
                    llm.FunctionCallOutput(
                        call_id=call.call_id,
                        name=call.name,
                        output=call.output,
                        is_error=call.is_error,
                    ),
                )
            )
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return llm.ChatContext([item for _, _, item in entries])


def _at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["started_at"] or line["created_at"]).timestamp()


def _nearest(matches: list[int], lines: list[dict[str, Any]], turn: StoredTurn) -> int:
    return min(matches, key=lambda i: abs(_at(lines[i]) - turn.started_at.timestamp()))


async def replay_turn(
    turn: StoredTurn, chat: llm.ChatContext, deck: RecordedDeck, model: llm.LLM[Any]
) -> Replayed:
    ttft: list[float] = []

    def on_metrics(event: MetricsCollectedEvent) -> None:
        if isinstance(event.metrics, LLMMetrics) and event.metrics.ttft >= 0:
            ttft.append(event.metrics.ttft)

    async with AgentSession[None](llm=model) as session:
        session.on("metrics_collected", on_metrics)
        await session.start(Presenter(deck=deck, chat_ctx=chat))
        started = time.perf_counter()
        result: RunResult[None] = await session.run(user_input=turn.user_text or "")
        seconds = time.perf_counter() - started
    said: list[str] = []
    calls: dict[str, tuple[str, Any, str | None]] = {}
    for event in result.events:
        if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
            said.append(event.item.text_content or "")
        elif isinstance(event, FunctionCallEvent):
            calls[event.item.call_id] = (event.item.name, _args(event.item.arguments), None)
        elif isinstance(event, FunctionCallOutputEvent) and event.item.call_id in calls:
            name, args, _ = calls[event.item.call_id]
            calls[event.item.call_id] = (name, args, event.item.output)
    return Replayed(
        agent_text=" ".join(s for s in said if s).strip() or None,
        tool_calls=list(calls.values()),
        slide_after=deck.index,
        seconds=seconds,
        llm_ttft=ttft,
        model=f"{model.provider}/{model.model}",
    )


def _args(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw


def same_tools(turn: StoredTurn, replayed: Replayed) -> bool:
    recorded = [(c.name, _args(c.arguments)) for c in turn.tool_calls]
    return recorded == [(name, args) for name, args, _ in replayed.tool_calls]


# -- reporting ----------------------------------------------------------------------------


@dataclass
class Bar:
    label: str
    start: float
    end: float
    mark: float | None = None  # first token / first byte


def waterfall(turn: StoredTurn) -> list[Bar]:
    """The recorded stages, in seconds from the end of the user's speech."""
    t = turn.timings
    origin = t.user_stopped_at
    if origin is None:
        starts = [c.started_at for c in turn.calls if c.started_at is not None]
        origin = min(starts) if starts else None
    bars: list[Bar] = []
    if t.transcription_delay is not None:
        bars.append(Bar("transcription delay", 0.0, t.transcription_delay))
    if t.end_of_turn_delay is not None:
        bars.append(Bar("end of turn (EOU)", 0.0, t.end_of_turn_delay))
    for call in turn.calls:
        if call.started_at is None or origin is None or call.duration is None:
            continue
        start = call.started_at - origin
        name = f"{call.stage} {call.model or call.provider or ''}".strip()
        mark = start + call.first_output if call.first_output is not None else None
        bars.append(Bar(name, start, start + call.duration, mark))
    for tool in turn.tool_calls:
        if tool.started_at is None or origin is None or tool.duration is None:
            continue
        start = tool.started_at - origin
        bars.append(Bar(f"tool {tool.name}", start, start + tool.duration))
    bars.sort(key=lambda bar: bar.start)
    if t.e2e_latency is not None:
        bars.append(Bar("agent audio starts (e2e)", t.e2e_latency, t.e2e_latency))
    return bars


def render_waterfall(bars: list[Bar], width: int = 48) -> list[str]:
    if not bars:
        return ["  (no timings recorded)"]
    low = min(0.0, *(b.start for b in bars))
    high = max(b.end for b in bars) or 1.0
    scale = width / max(high - low, 1e-6)
    lines = []
    for bar in bars:
        left = int((bar.start - low) * scale)
        length = max(1, int((bar.end - bar.start) * scale))
        row = [" "] * (width + 1)
        for i in range(left, min(width + 1, left + length)):
            row[i] = "█"
        if bar.mark is not None:
            row[min(width, int((bar.mark - low) * scale))] = "▏"
        lines.append(f"  {bar.label[:28]:<28} {''.join(row)} {bar.start:+7.3f} → {bar.end:7.3f} s")
    return lines


def report(turn: StoredTurn, replayed: Replayed) -> str:
    def tools_of(calls: list[tuple[str, Any]]) -> str:
        return "; ".join(f"{n}({json.dumps(a)})" for n, a in calls) or "—"

    recorded_tools = tools_of([(c.name, _args(c.arguments)) for c in turn.tool_calls])
    replayed_tools = tools_of([(n, a) for n, a, _ in replayed.tool_calls])
    verdict = "same" if same_tools(turn, replayed) else "DIFFERENT"
    t = turn.timings
    out = [
        f"Turn {turn.number}  ({turn.turn_id}, {turn.started_at:%Y-%m-%d %H:%M:%S} UTC)",
        f"  user:      {turn.user_text or '—'}",
        f"  tools:     recorded  {recorded_tools}",
        f"             replayed  {replayed_tools}   [{verdict}]",
        f"  agent:     recorded  {turn.agent_text or '—'}"
        + ("  (interrupted)" if turn.interrupted else ""),
        f"             replayed  {replayed.agent_text or '—'}",
        f"  slide:     recorded  {turn.slide_before} → {turn.slide_after}"
        f"   replayed  {turn.slide_before or 1} → {replayed.slide_after}",
        f"  models:    recorded  {', '.join(f'{k}={v}' for k, v in turn.providers.items()) or '—'}"
        f"   replayed  llm={replayed.model}",
        f"  timings:   recorded  EOU {_s(t.end_of_turn_delay)}, transcription "
        f"{_s(t.transcription_delay)}, LLM TTFT {_s(t.llm_ttft)}, TTS TTFB {_s(t.tts_ttfb)}, "
        f"end-to-end {_s(t.e2e_latency)}",
        f"             replayed  LLM TTFT {', '.join(_s(x) for x in replayed.llm_ttft) or '—'}, "
        f"text turn {replayed.seconds:.3f} s",
        "  waterfall (recorded, seconds from the end of the user's speech):",
        *render_waterfall(waterfall(turn)),
    ]
    return "\n".join(out)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def plot(turns: list[StoredTurn], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ReplayError("--plot needs matplotlib (pip install '.[dev]')") from exc
    rows = [(turn, waterfall(turn)) for turn in turns]
    height = sum(max(1, len(bars)) for _, bars in rows)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(10, 1 + 0.35 * height), squeeze=False, constrained_layout=True
    )
    for ax, (turn, bars) in zip(axes[:, 0], rows, strict=True):
        for y, bar in enumerate(bars):
            ax.barh(y, max(bar.end - bar.start, 0.005), left=bar.start, color="tab:blue")
            if bar.mark is not None:
                ax.plot([bar.mark], [y], marker="|", color="black", markersize=12)
        ax.set_yticks(range(len(bars)), [b.label for b in bars])
        ax.invert_yaxis()
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_title(f"Turn {turn.number}: {(turn.user_text or '')[:60]}", fontsize=9, loc="left")
        ax.set_xlabel("seconds from the end of the user's speech")
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the command --------------------------------------------------------------------------


def _model(spec: str) -> llm.LLM[Any]:
    """'local' (the offline responder) or 'openai[:MODEL]' (PODIUM_OPENAI_* settings)."""
    if spec == "local":
        return OfflineResponder()
    provider, _, name = spec.partition(":")
    if provider != "openai":
        raise typer.BadParameter("use 'local' or 'openai[:MODEL]'", param_hint="--llm")
    overrides: dict[str, Any] = {"llm_provider": "openai"}
    if name:
        overrides["openai_llm_model"] = name
    try:
        settings = WorkerSettings(**overrides)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--llm") from exc
    return build_llm(settings)


async def run(
    session_id: UUID,
    *,
    api_url: str,
    api_key: str,
    turn_number: int | None,
    llm_spec: str,
    plot_path: Path | None,
    out: Any = sys.stdout,
) -> list[tuple[StoredTurn, Replayed]]:
    records = Records(api_url, api_key)
    try:
        session = await records.session(session_id)
        if not session.get("deck_id"):
            raise ReplayError("the session has no deck: there is nothing to replay")
        turns = await records.turns(session_id)
        chosen = [t for t in turns if turn_number is None or t.number == turn_number]
        if not chosen:
            raise ReplayError(
                f"turn {turn_number} is not in the log (it has {len(turns)} turns)"
                if turn_number
                else "the session has no recorded turns"
            )
        lines = await records.transcript(session_id)
        slides = await records.slides(session["deck_id"])
        results = []
        for turn in chosen:
            deck = RecordedDeck(
                records,
                session_id,
                session["deck_id"],
                slides,
                index=turn.slide_before or 1,
                version=turn.version_before or 1,
            )
            model = _model(llm_spec)
            try:
                replayed = await replay_turn(turn, history_before(turn, lines, turns), deck, model)
            finally:
                await model.aclose()
            print(report(turn, replayed), end="\n\n", file=out)
            results.append((turn, replayed))
        if plot_path is not None:
            plot(chosen, plot_path)
            print(f"waterfall written to {plot_path}", file=out)
        return results
    finally:
        await records.aclose()


app = typer.Typer(add_completion=False)


@app.command()
def replay(
    session_id: Annotated[UUID, typer.Argument(help="The session to replay.")],
    turn: Annotated[
        int | None, typer.Option("--turn", min=1, help="Only this turn (from 1); all by default.")
    ] = None,
    llm_spec: Annotated[
        str,
        typer.Option("--llm", help="'local' (offline responder) or 'openai[:MODEL]'."),
    ] = "local",
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Write the timing waterfall as an image.")
    ] = None,
    api_url: Annotated[
        str, typer.Option(envvar="PODIUM_API_URL", help="The control plane's URL.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option(envvar="PODIUM_API_KEY", help="A tenant API key (read-only use).")
    ] = "",
) -> None:
    """Re-drive a session's recorded turns through the presenter in text mode and compare."""
    if not api_key:
        raise typer.BadParameter("a tenant API key is needed", param_hint="--api-key")
    if llm_spec != "local":
        _model(llm_spec)  # refuse a bad --llm before reading anything
    try:
        asyncio.run(
            run(
                session_id,
                api_url=api_url,
                api_key=api_key,
                turn_number=turn,
                llm_spec=llm_spec,
                plot_path=plot_path,
            )
        )
    except ReplayError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


if __name__ == "__main__":
    app()
