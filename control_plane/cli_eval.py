"""``podium eval DECK_ID questions.jsonl``: what the presenter would do with the questions a team
expects, through ``POST /v1/decks/{id}/evaluations`` (docs/evaluation.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from control_plane.cli_decks import DEFAULT_API_URL, ApiKey, ApiUrl, _client, _error, connect
from shared.evaluation import EvalQuestion, EvalReport, EvalResult, summarise

BATCH = 25  # questions per request: small enough for a steady progress bar
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_LINES = 5000


def read_questions(path: Path) -> list[EvalQuestion]:
    """The questions file, one JSON object a line; every bad line is reported, then exit 2."""
    if not path.is_file():
        _error(f"{path} is not a file.")
        raise typer.Exit(2)
    if path.stat().st_size > MAX_FILE_BYTES:
        _error(f"{path} is larger than {MAX_FILE_BYTES // 1024 // 1024} MB.")
        raise typer.Exit(2)
    questions, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            questions.append(EvalQuestion.model_validate_json(line))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "line"
                problems.append(f"line {number}: {where}: {error['msg']}")
    if len(questions) > MAX_LINES:
        problems.append(f"{len(questions)} questions; at most {MAX_LINES} per file")
    if problems:
        for problem in problems[:20]:
            _error(problem)
        if len(problems) > 20:
            _error(f"... and {len(problems) - 20} more")
        typer.echo(
            'Each line is a JSON object such as {"question": "How much is it?", "expect": '
            '"answer", "slides": [7]}; see docs/evaluation.md.',
            err=True,
        )
        raise typer.Exit(2)
    if not questions:
        _error(f"{path} has no questions.")
        raise typer.Exit(2)
    return questions


def eval_command(
    ctx: typer.Context,
    deck_id: Annotated[UUID, typer.Argument(help="The deck's id (podium decks list).")],
    questions_file: Annotated[
        Path, typer.Argument(metavar="QUESTIONS.jsonl", help="One JSON question per line.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as JSON.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the figures to this PNG file.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any question is not handled as expected.")
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Run each question through the presenter's logic and report what it would do and say,
    with hit@1, navigation and refusal rates. Exit 1 on API errors (and, with --strict, when a
    question is not handled as expected), 2 on a bad file."""
    connect(ctx, api_url, api_key)
    questions = read_questions(questions_file)
    results: list[EvalResult] = []
    progress = Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with _client(ctx) as client, progress:
        task = progress.add_task("questions", total=len(questions))
        for start in range(0, len(questions), BATCH):
            batch = questions[start : start + BATCH]
            results += client.evaluate_deck(deck_id, batch).results
            progress.advance(task, len(batch))
    report = EvalReport(deck_id=str(deck_id), results=results, summary=summarise(results))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    if plot is not None:
        _plot(report, plot)
        typer.echo(f"plot: {plot}", err=True)
    if strict and any(r.correct is False for r in results):
        raise typer.Exit(1)


def _did(r: EvalResult) -> str:
    if r.action in ("answer", "navigate") and r.slide is not None:
        return f"{r.action} {r.slide}"
    return r.action if r.tool is None or r.action != "other" else r.tool


def _print_report(report: EvalReport) -> None:
    console = Console()
    table = Table(show_edge=False, pad_edge=False)
    for column, justify in (("#", "right"), ("EXPECT", "left"), ("QUESTION", "left"),
                            ("DID", "left"), ("OK", "left"), ("SAYS", "left")):  # fmt: skip
        table.add_column(column, justify=justify, overflow="fold" if column == "SAYS" else None)  # type: ignore[arg-type]
    for number, r in enumerate(report.results, start=1):
        expect: str = r.expect or "-"
        if r.expect in ("answer", "navigate") and r.slides:
            expect += " " + ",".join(map(str, r.slides))
        ok = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.correct]
        says = r.say if len(r.say) <= 90 else r.say[:89] + "…"
        table.add_row(str(number), expect, r.question, _did(r), ok, says)
    console.print(table)
    s = report.summary

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    console.print(
        f"\n{s.questions} questions · answerable {s.answer.n}: cited the answering slide "
        f"{pct(s.hit_at_1)} (in the top 3: {pct(s.hit_at_3)}), answered {pct(s.answered)} · "
        f"navigation {s.navigate.n}: landed {pct(s.navigate.correct)} · off-deck "
        f"{s.decline.n}: declined {pct(s.decline.correct)} · {s.ms_p50:.0f} ms a question "
        f"(p95 {s.ms_p95:.0f})"
    )


def _plot(report: EvalReport, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        _error("--plot needs matplotlib: pip install matplotlib")
        raise typer.Exit(2) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report.summary
    bars = [
        ("cited the\nanswering slide", s.hit_at_1, s.answer.n),
        ("answering slide\nin the top 3", s.hit_at_3, s.answer.n),
        ("answerable\nanswered", s.answered, s.answer.n),
        ("navigation\nlanded", s.navigate.correct, s.navigate.n),
        ("off-deck\ndeclined", s.decline.correct, s.decline.n),
    ]
    shown = [(label, value or 0.0, n) for label, value, n in bars if n]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[3, 2])
    drawn = left.bar([b[0] for b in shown], [b[1] for b in shown], color="tab:blue")
    left.bar_label(drawn, labels=[f"{b[1]:.0%}\nof {b[2]}" for b in shown], fontsize=8)
    left.set_ylim(0, 1.15)
    left.set_title(f"Deck {report.deck_id[:8]}: what the presenter would do")
    wrong: dict[int, int] = {}
    for r in report.results:
        if r.correct is False:
            for slide in r.slides or [0]:
                wrong[slide] = wrong.get(slide, 0) + 1
    if wrong:
        keys = sorted(wrong)
        right.bar([str(k) if k else "off-deck" for k in keys], [wrong[k] for k in keys],
                  color="tab:red")  # fmt: skip
    right.set_title("Missed questions, by the slide that answers them")
    right.set_xlabel("slide")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
