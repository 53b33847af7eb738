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
import sys
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from livekit.agents import llm

from shared.schemas import StoredTurn
from shared.settings import WorkerSettings

from ..providers import build_llm
from ..responder import OfflineResponder
from .records import RecordedDeck, Records, ReplayError
from .report import Bar, plot, render_waterfall, report, waterfall
from .turn import Replayed, history_before, replay_turn, same_tools

__all__ = [
    "Bar",
    "RecordedDeck",
    "Records",
    "ReplayError",
    "Replayed",
    "app",
    "history_before",
    "render_waterfall",
    "replay_turn",
    "report",
    "run",
    "same_tools",
    "waterfall",
]


def _model(spec: str) -> llm.LLM[Any]:
    """'local' (the offline responder) or 'openai[:MODEL]' (PODIUM_OPENAI_* settings)."""
    if spec == "local":
        return OfflineResponder()
    provider, _, name = spec.partition(":")
    if provider != "openai":
        raise typer.BadParameter("use 'local' or 'openai[:MODEL]'", param_hint="--llm")
    # Replay signs nothing: the worker's secrets, and their checks, do not apply here.
    overrides: dict[str, Any] = {"llm_provider": "openai", "environment": "dev"}
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
