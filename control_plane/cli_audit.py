"""``podium admin audit TENANT``: a tenant's audit trail, newest first, straight from Postgres.

Reading it this way is not itself recorded (the operator holds the database; the trail records
the tenant API)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, get_args
from uuid import UUID

import typer
from pydantic import ValidationError

from control_plane import db
from control_plane.audit import service
from control_plane.audit.repository import Filters
from control_plane.audit.schemas import AuditEntry, Outcome
from control_plane.errors import PodiumError
from control_plane.migrate import apply_migrations
from control_plane.tenants import repository as tenants
from shared.settings import ControlPlaneSettings

_OUTCOMES = get_args(Outcome)


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            "an ISO 8601 time, e.g. 2026-01-31T09:00Z", param_hint=option
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _line(entry: AuditEntry) -> str:
    return (
        f"{entry.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z  {entry.method:<6} {entry.route:<48} "
        f"{entry.target_id or '-':<36}  {entry.status} {entry.outcome:<6}  "
        f"key {entry.key_id or '-'}  from {entry.client_ip or '-'}"
    )


def audit_command(
    tenant_id: Annotated[UUID, typer.Argument(help="The tenant.", show_default=False)],
    since: Annotated[
        str | None,
        typer.Option("--from", help="At or after this time (ISO 8601; UTC without an offset)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Before this time.")] = None,
    route: Annotated[
        str | None, typer.Option(help="A route's template, e.g. /v1/sessions/{session_id}.")
    ] = None,
    key_id: Annotated[UUID | None, typer.Option(help="Calls made with this key.")] = None,
    target_id: Annotated[str | None, typer.Option(help="Calls about this id.")] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, denied or error.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="At most this many entries, newest first.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """A tenant's audit trail: every change made and every record read through its API keys,
    newest first."""
    if outcome is not None and outcome not in _OUTCOMES:
        raise typer.BadParameter(f"one of {', '.join(_OUTCOMES)}", param_hint="--outcome")
    filters = Filters(
        since=_moment(since, "--from"),
        until=_moment(until, "--to"),
        route=route,
        key_id=key_id,
        target_id=target_id,
        outcome=outcome,
    )

    async def run() -> list[AuditEntry]:
        conn = await db.connect(ControlPlaneSettings().database_url.get_secret_value())
        try:
            await apply_migrations(conn)
            if not await tenants.exists(conn, tenant_id):
                raise PodiumError(f"no tenant {tenant_id}")
            found: list[AuditEntry] = []
            cursor = None
            while len(found) < limit:
                page = await service.page(
                    conn,
                    tenant_id,
                    filters,
                    cursor=cursor,
                    limit=min(limit - len(found), service.MAX_PAGE),
                )
                found += page.items
                if (cursor := page.next_cursor) is None:
                    break
            return found
        finally:
            await conn.close()

    try:
        entries = asyncio.run(run())
    except ValidationError:
        raise  # refused settings: `podium` itself reports them
    except PodiumError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries]))
        return
    for entry in entries:
        typer.echo(_line(entry))
