"""``podium decks ...``: upload, follow, list, search and delete decks through the public API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from control_plane.api_client import ApiClient, ApiError
from control_plane.decks.schemas import DeckPublic

decks = typer.Typer(
    help="Upload, inspect and search decks through the public API (needs a tenant API key).",
    no_args_is_help=True,
)

_POLL_SECONDS = 0.3
_SNIPPET_CHARS = 80
_TITLE_CHARS = 40
_MIN_FLEX = 12
_EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd command
_DONE = ("ready", "failed")

AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts.")]
DeckId = Annotated[UUID, typer.Argument(help="The deck's id, as printed by upload or list.")]


@dataclass(frozen=True)
class Connection:
    api_url: str
    api_key: str | None = field(repr=False)


ApiUrl = Annotated[str, typer.Option(envvar="PODIUM_API_URL", help="The control plane's base URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="PODIUM_API_KEY", help="A tenant API key.", show_default=False),
]
DEFAULT_API_URL = "http://127.0.0.1:8000"


@decks.callback()
def connect(ctx: typer.Context, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """Where the control plane is and which tenant is asking."""
    if not api_url.startswith(("http://", "https://")):
        raise typer.BadParameter(
            "give a full URL such as http://127.0.0.1:8000", param_hint="--api-url"
        )
    # The key is checked when a command runs, not here, so `podium decks upload --help` works
    # without one.
    ctx.obj = Connection(api_url, api_key)


@contextmanager
def _client(ctx: typer.Context) -> Iterator[ApiClient]:
    """The API client for this invocation; an :class:`ApiError` ends the command with exit 1."""
    conn = ctx.find_object(Connection)
    assert conn is not None, "the decks callback sets the connection"
    if not conn.api_key:
        _error(
            "no API key. Pass --api-key or set PODIUM_API_KEY "
            "(an operator creates one with `podium admin create-tenant`)."
        )
        raise typer.Exit(2)
    try:
        with ApiClient(conn.api_url, conn.api_key) as client:
            yield client
    except ApiError as exc:
        _error(f"{exc.message} ({exc.code})")
        raise typer.Exit(1) from exc


@decks.command()
def upload(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A PDF or PowerPoint (.pptx) file."
        ),
    ],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow ingestion until the deck is ready.")
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Upload a deck and, by default, wait until it is ready to present.

    Exits 1 if the upload is refused or ingestion fails (with --json too, after the JSON).
    """
    with _client(ctx) as client:
        try:
            deck = client.upload_deck(file)
        except KeyboardInterrupt:
            _error("upload interrupted; if it reached the server, `podium decks list` shows it.")
            raise typer.Exit(_EXIT_INTERRUPTED) from None
        if not wait:
            if as_json:
                _print_json(deck)
            else:
                _print_accepted(deck)
            return
        try:
            deck = _wait(client, deck) if as_json else _wait_with_progress(client, deck)
        except KeyboardInterrupt:
            typer.echo(
                "Stopped waiting; ingestion continues on the server.\n"
                f"Check on it with: podium decks show {deck.deck_id}",
                err=True,
            )
            raise typer.Exit(_EXIT_INTERRUPTED) from None
    if as_json:
        _print_json(deck)
    elif deck.status == "ready":
        _print_ready(deck)
    if deck.status == "failed":
        if not as_json:
            failure = deck.failure
            reason = f"{failure.message} ({failure.code})" if failure else "no reason given"
            _error(f"ingestion failed: {reason}")
        raise typer.Exit(1)


@decks.command("list")
def list_decks(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many decks to show.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue from where a previous list stopped.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The tenant's decks, newest first."""
    with _client(ctx) as client:
        page = client.list_decks(limit, cursor)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    if not page.items:
        typer.echo("No decks yet. Upload one with: podium decks upload FILE")
        return
    now = datetime.now(UTC)
    rows = [
        [
            str(deck.deck_id),
            _shorten(deck.title or deck.filename, _TITLE_CHARS),
            deck.status,
            str(deck.progress.slides_total)
            if deck.status == "ready"
            else f"{deck.progress.slides_done}/{deck.progress.slides_total}",
            _age(now - deck.created_at),
        ]
        for deck in page.items
    ]
    _print_table(["DECK ID", "TITLE", "STATUS", "SLIDES", "AGE"], rows, flex=1, right=(3, 4))
    if page.next_cursor:
        typer.echo(f"More decks: podium decks list --cursor {page.next_cursor}")


@decks.command()
def show(ctx: typer.Context, deck_id: DeckId, as_json: AsJson = False) -> None:
    """One deck's status, progress and details."""
    with _client(ctx) as client:
        deck = client.get_deck(deck_id)
    if as_json:
        _print_json(deck)
        return
    progress = f"{deck.progress.slides_done}/{deck.progress.slides_total} slides"
    rows = [
        ("deck id", str(deck.deck_id)),
        ("title", deck.title or "(none)"),
        ("file", f"{deck.filename} ({deck.kind}, {_size(deck.size_bytes)})"),
        ("status", f"{deck.status} ({progress})"),
    ]
    if deck.failure:
        rows.append(("failure", f"{deck.failure.message} ({deck.failure.code})"))
    rows += [
        ("previews", "yes" if deck.previews_available else "no"),
        ("created", _utc(deck.created_at)),
    ]
    if deck.ready_at:
        rows.append(("ready", _utc(deck.ready_at)))
    for name, value in rows:
        typer.echo(f"{name:<9} {value}")


@decks.command()
def delete(ctx: typer.Context, deck_id: DeckId) -> None:
    """Delete a deck, its slides and its images."""
    with _client(ctx) as client:
        client.delete_deck(deck_id)
    typer.echo(f"Deleted deck {deck_id}.")


@decks.command()
def search(
    ctx: typer.Context,
    deck_id: DeckId,
    query: Annotated[str, typer.Argument(help="A question or keywords.")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=20, help="How many hits.")] = 5,
    as_json: AsJson = False,
) -> None:
    """Find the slides that answer a question, best first (what the presenter would use)."""
    with _client(ctx) as client:
        results = client.search_deck(deck_id, query, k)
    if as_json:
        typer.echo(results.model_dump_json(indent=2))
        return
    if not results.hits:
        typer.echo("No matching slides.")
        return
    rows = [
        [
            str(rank),
            str(hit.slide_index),
            _shorten(hit.title or "", _TITLE_CHARS),
            hit.matched,
            _shorten(hit.snippet, _SNIPPET_CHARS),
        ]
        for rank, hit in enumerate(results.hits, start=1)
    ]
    _print_table(["#", "SLIDE", "TITLE", "FROM", "SNIPPET"], rows, flex=4, right=(0, 1))


# --- following ingestion ---------------------------------------------------------------------


def _wait(
    client: ApiClient, deck: DeckPublic, on_poll: Callable[[DeckPublic], None] | None = None
) -> DeckPublic:
    while deck.status not in _DONE:
        time.sleep(_POLL_SECONDS)
        deck = client.get_deck(deck.deck_id)
        if on_poll:
            on_poll(deck)
    return deck


def _wait_with_progress(client: ApiClient, deck: DeckPublic) -> DeckPublic:
    # On stderr, so stdout carries only the result when it is piped or captured.
    with Progress(
        _Mark(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slides"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("", total=None)

        def show(current: DeckPublic) -> None:
            label = {"pending": "Queued", "processing": "Ingesting"}.get(current.status, "")
            total = current.progress.slides_total or None
            progress.update(
                task,
                description=f"{label or current.status.capitalize()} {current.filename}",
                total=total,
                completed=current.progress.slides_done,
            )
            if current.status in _DONE:
                # Replace the spinner with the outcome and stop the clock where it is.
                progress.update(task, mark="✓" if current.status == "ready" else "✗")
                progress.stop_task(task)

        show(deck)
        return _wait(client, deck, show)


class _Mark(SpinnerColumn):
    """A spinner until the task gets a ``mark`` field (✓ or ✗)."""

    def render(self, task: Task) -> RenderableType:
        mark = task.fields.get("mark")
        return Text(mark) if isinstance(mark, str) else super().render(task)


# --- output ----------------------------------------------------------------------------------


def _print_table(
    headers: list[str], rows: list[list[str]], *, flex: int, right: tuple[int, ...]
) -> None:
    """One line per row. In a terminal the ``flex`` column is cut to fit the width; piped
    output is never cut. Rich would rather squeeze columns to nothing than overflow, so every
    width is fixed here."""
    console = Console(highlight=False)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    if console.is_terminal:
        room = console.width - gaps - sum(widths) + widths[flex]
        widths[flex] = max(min(widths[flex], room), _MIN_FLEX)
    # A terminal narrower than the table wraps its lines rather than lose a column.
    console.width = max(console.width, sum(widths) + gaps)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for i, (header, width) in enumerate(zip(headers, widths, strict=True)):
        table.add_column(
            header,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if i in right else "left",
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: deck content is not rich markup
    console.print(table)


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _print_json(deck: DeckPublic) -> None:
    typer.echo(deck.model_dump_json(indent=2))


def _print_accepted(deck: DeckPublic) -> None:
    typer.echo(f"Uploaded {deck.filename} as deck {deck.deck_id} ({deck.status}).")
    typer.echo(f"Follow it with: podium decks show {deck.deck_id}")


def _print_ready(deck: DeckPublic) -> None:
    typer.echo(f"Ready: {deck.title or deck.filename}")
    typer.echo(f"  deck id   {deck.deck_id}")
    typer.echo(f"  slides    {deck.progress.slides_total}")
    typer.echo(f"  previews  {'yes' if deck.previews_available else 'no'}")


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0] or flat[: limit - 1]
    return cut + "…"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


def _age(elapsed: timedelta) -> str:
    """Like ``kubectl get``'s AGE: the largest whole unit, so the column stays narrow."""
    seconds = max(int(elapsed.total_seconds()), 0)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
