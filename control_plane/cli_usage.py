"""``podium usage TENANT --from --to``: what a tenant used, per day, straight from Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

import typer

from control_plane import db
from control_plane.errors import PodiumError
from control_plane.migrate import apply_migrations
from control_plane.tenants import repository as tenants
from control_plane.usage import service
from control_plane.usage.schemas import UsageFigures, UsagePage
from shared.settings import ControlPlaneSettings


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter("a UTC day, e.g. 2026-01-31", param_hint=option) from exc


def _lines(figures: UsageFigures) -> list[str]:
    lines = [f"session minutes      {figures.session_minutes:.2f}"]
    lines += [
        f"participant minutes  {role}: {m:.2f}" for role, m in figures.participant_minutes.items()
    ]
    lines += [f"STT audio seconds    {p}: {s:.1f}" for p, s in figures.stt_audio_seconds.items()]
    lines += [f"TTS characters       {p}: {n}" for p, n in figures.tts_characters.items()]
    lines += [
        f"LLM tokens           {m}: {t.input} in, {t.output} out"
        for m, t in figures.llm_tokens.items()
    ]
    lines += [f"avatar minutes       {p}: {m:.2f}" for p, m in figures.avatar_minutes.items()]
    lines += [f"bytes stored         {k}: {n}" for k, n in figures.storage_added_bytes.items()]
    return lines


def usage_command(
    tenant_id: Annotated[UUID, typer.Argument(help="The tenant.", show_default=False)],
    first: Annotated[
        str | None, typer.Option("--from", help="The first UTC day (YYYY-MM-DD); today if omitted.")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", help="The last UTC day included; today if omitted.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """What a tenant used between two UTC days (as GET /v1/usage?group_by=day answers)."""
    today = datetime.now(UTC).date()
    last_day = _day(last, "--to") or today
    first_day = _day(first, "--from") or last_day
    settings = ControlPlaneSettings()

    async def run() -> UsagePage | None:
        dsn = settings.database_url.get_secret_value()
        conn = await db.connect(dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            if not await tenants.exists(pool, tenant_id):
                return None
            return await service.usage(pool, tenant_id, first_day, last_day, "day")
        finally:
            await pool.close()

    try:
        page = asyncio.run(run())
    except PodiumError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if page is None:
        typer.echo(f"error: no tenant {tenant_id}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(page.model_dump_json(by_alias=True))
        return
    typer.echo(f"tenant {tenant_id}, {first_day} to {last_day} (UTC)")
    for line in _lines(page.total):
        typer.echo(f"  {line}")
    typer.echo(
        f"  storage now          decks {page.storage.decks} B, "
        f"recordings {page.storage.recordings} B"
    )
    for day in page.days or []:
        typer.echo(f"{day.day}")
        for line in _lines(day.usage):
            typer.echo(f"  {line}")
