"""``podium admin keys ...``: a tenant's API keys, straight in Postgres.

The operator's way in: it may grant any scope and revoke any key, the tenant's last admin key
included (a leaked key is revoked first and replaced after). Every replica refuses a revoked
key within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import asyncpg
import typer
from pydantic import ValidationError

from control_plane import db
from control_plane.errors import PodiumError
from control_plane.keys import service
from control_plane.keys.schemas import ALL_SCOPES, MAX_GRACE_SECONDS, KeyPublic
from control_plane.migrate import apply_migrations
from control_plane.tenants import repository as tenants
from shared.settings import ControlPlaneSettings

keys = typer.Typer(
    help="A tenant's API keys: list, create, revoke, rotate (talks to Postgres directly).",
    no_args_is_help=True,
)

TenantArg = Annotated[UUID, typer.Argument(help="The tenant.", show_default=False)]
KeyArg = Annotated[UUID, typer.Argument(help="The key's id, as `keys list` prints it.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

T = TypeVar("T")


@asynccontextmanager
async def _tenant_connection(tenant_id: UUID) -> AsyncIterator[asyncpg.Connection]:
    conn = await db.connect(ControlPlaneSettings().database_url.get_secret_value())
    try:
        await apply_migrations(conn)
        if not await tenants.exists(conn, tenant_id):
            raise PodiumError(f"no tenant {tenant_id}")
        yield conn
    finally:
        await conn.close()


def _run(tenant_id: UUID, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """``work`` on a connection; a domain error (unknown tenant or key, …) ends with exit 2."""

    async def run() -> T:
        async with _tenant_connection(tenant_id) as conn:
            return await work(conn)

    try:
        return asyncio.run(run())
    except ValidationError:
        raise  # refused settings: `podium` itself reports them
    except (PodiumError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _echo_key(key: KeyPublic) -> None:
    typer.echo(
        f"{key.key_id}  {key.prefix}…  {key.name:<20}  {','.join(key.scopes):<40}  "
        f"created {_when(key.created_at)}  used {_when(key.last_used_at)}  "
        f"revoked {_when(key.revoked_at)}"
    )


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str))


@keys.command("list")
def list_cmd(tenant_id: TenantArg, as_json: AsJson = False) -> None:
    """The tenant's keys, newest first, revoked ones included (never a secret)."""
    found = _run(tenant_id, lambda conn: service.list_keys(conn, tenant_id))
    if as_json:
        _json([k.model_dump(mode="json") for k in found])
        return
    for key in found:
        _echo_key(key)


@keys.command("create")
def create_cmd(
    tenant_id: TenantArg,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help=f"One of {', '.join(ALL_SCOPES)}; repeat for more. Default: all of them.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """A new key for the tenant, printed once: store it now."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise typer.BadParameter("1-100 characters", param_hint="--name")
    chosen = scopes or list(ALL_SCOPES)
    created = _run(tenant_id, lambda conn: service.create_key(conn, tenant_id, name, chosen))
    if as_json:
        _json(created.model_dump(mode="json"))
        return
    _echo_key(created)
    typer.echo(f"api_key: {created.api_key}")
    typer.echo("Store the key now: it is not shown again.", err=True)


@keys.command("revoke")
def revoke_cmd(tenant_id: TenantArg, key_id: KeyArg) -> None:
    """Revoke a key now; every replica refuses it within seconds."""

    async def revoke(conn: asyncpg.Connection) -> list[KeyPublic]:
        await service.revoke_key(conn, tenant_id, key_id, keep_an_admin_key=False)
        return await service.list_keys(conn, tenant_id)

    remaining = _run(tenant_id, revoke)
    typer.echo(f"revoked {key_id}")
    if not any("admin" in k.scopes and k.revoked_at is None for k in remaining):
        typer.echo(
            f"note: the tenant has no admin key left; `podium admin keys create {tenant_id} "
            "--name admin` makes one.",
            err=True,
        )


@keys.command("rotate")
def rotate_cmd(
    tenant_id: TenantArg,
    key_id: KeyArg,
    grace_seconds: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_GRACE_SECONDS, help="How long the old key keeps working (0: not)."
        ),
    ] = 0,
    as_json: AsJson = False,
) -> None:
    """A new key with the old one's name and scopes, printed once; the old one is revoked
    after the grace period."""
    rotated = _run(
        tenant_id, lambda conn: service.rotate_key(conn, tenant_id, key_id, grace_seconds)
    )
    if as_json:
        _json(rotated.model_dump(mode="json"))
        return
    _echo_key(rotated.new_key)
    typer.echo(f"api_key: {rotated.new_key.api_key}")
    typer.echo(f"the old key {key_id} stops working at {rotated.old_key.revoked_at}")
    typer.echo("Store the key now: it is not shown again.", err=True)
