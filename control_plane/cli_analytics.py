"""``podium analytics DECK_ID``: a deck's presentation analytics over a time range, through
``GET /v1/decks/{id}/analytics`` (docs/analytics.md)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from control_plane.analytics.schemas import DeckAnalytics
from control_plane.cli_decks import DEFAULT_API_URL, ApiKey, ApiUrl, _client, _error, connect

_TITLE_CHARS = 32
_DATES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def analytics_command(
    ctx: typer.Context,
    deck_id: Annotated[UUID, typer.Argument(help="The deck's id (podium decks list).")],
    since: Annotated[
        datetime | None,
        typer.Option(
            "--from", formats=_DATES, help="Sessions created from (UTC; default: 30 days ago)."
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--to", formats=_DATES, help="…until, excluded (UTC; default: now)."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw time per slide and drop-off to this PNG file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Time and questions per slide, content gaps (questions the deck could not answer),
    completion and drop-off of the deck's sessions. Needs a key with records:read."""
    connect(ctx, api_url, api_key)
    with _client(ctx) as client:
        report = client.deck_analytics(deck_id, since, until)
    if as_json:
        typer.echo(report.model_dump_json(indent=2, by_alias=True))
    else:
        _print(report)
    if plot is not None:
        _plot(report, plot)
        typer.echo(f"plot: {plot}", err=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _print(report: DeckAnalytics) -> None:
    console = Console()
    more = "+" if report.sessions_truncated else ""
    console.print(
        f"[bold]{report.title or 'Untitled deck'}[/bold]  {report.from_:%Y-%m-%d %H:%M} → "
        f"{report.to:%Y-%m-%d %H:%M} UTC\n"
        f"{report.sessions_count}{more} sessions, mean length "
        f"{_duration(report.mean_length_seconds)}, mean completion "
        f"{_share(report.mean_completion)}, {report.ended_early} ended early"
    )
    slides = Table(title="Per slide", show_edge=False, pad_edge=False)
    for column in ("#", "TITLE", "MEAN TIME", "PAUSED", "QUESTIONS", "DECLINED", "CUT OFF",
                   "REACHED", "DROP-OFFS"):  # fmt: skip
        slides.add_column(column, justify="left" if column == "TITLE" else "right")
    for s in report.slides:
        slides.add_row(
            str(s.index),
            (s.title or "")[:_TITLE_CHARS],
            _duration(s.mean_seconds),
            _duration(s.paused_seconds),
            str(s.questions),
            str(s.declined),
            str(s.interruptions),
            str(s.reached),
            str(s.drop_offs),
        )
    console.print(slides)
    gaps = Table(title="Content gaps (declined questions)", show_edge=False, pad_edge=False)
    for column in ("ASKED", "SESSIONS", "QUESTION", "SLIDES"):
        gaps.add_column(column, justify="left" if column == "QUESTION" else "right")
    for g in report.content_gaps:
        gaps.add_row(str(g.count), str(len(g.sessions)), g.question, ", ".join(map(str, g.slides)))
    console.print(gaps if report.content_gaps else "No content gaps: every question was answered.")
    if report.escalation_reasons:
        console.print(
            "Escalations: " + "; ".join(f"{r} ({n})" for r, n in report.escalation_reasons.items())
        )


def _plot(report: DeckAnalytics, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        _error(
            "--plot needs matplotlib: pip install matplotlib "
            "(or the dev extra: pip install -e '.[dev]')"
        )
        raise typer.Exit(2) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = [str(s.index) for s in report.slides]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    drawn = top.bar(labels, [s.mean_seconds for s in report.slides], color="tab:blue")
    top.bar_label(
        drawn, labels=[f"{s.questions} q" if s.questions else "" for s in report.slides], fontsize=8
    )
    top.set_ylabel("seconds per session")
    top.set_title(f"{report.title or report.deck_id}: time and questions per slide")
    bottom.bar(labels, [s.reached for s in report.slides], color="tab:blue", label="reached")
    bottom.bar(
        labels, [s.drop_offs for s in report.slides], color="tab:red", label="ended here early"
    )
    bottom.set_ylabel("sessions")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.margins(y=0.15)
    bottom.set_xlabel("slide")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
