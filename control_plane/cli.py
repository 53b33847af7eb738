"""The ``podium`` command: serve the API, migrate, administer tenants, and manage decks."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from pydantic import ValidationError

from control_plane import db
from control_plane.cli_analytics import analytics_command
from control_plane.cli_audit import audit_command
from control_plane.cli_decks import decks
from control_plane.cli_eval import eval_command
from control_plane.cli_keys import keys
from control_plane.cli_usage import usage_command
from control_plane.errors import NotFound
from control_plane.limits import service as limits
from control_plane.limits.models import parse_changes
from control_plane.limits.service import LimitValue
from control_plane.migrate import apply_migrations
from control_plane.privacy import policy
from control_plane.privacy.policy import RECORD_KINDS, DataPolicy
from control_plane.tenants import repository as tenants
from control_plane.tenants.service import create_tenant
from shared.settings import ControlPlaneSettings

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("control_plane")

app = typer.Typer(help="Podium: a slide-aware AI presenter.", no_args_is_help=True)
admin = typer.Typer(
    help="Tenant administration (talks to Postgres directly).", no_args_is_help=True
)
app.add_typer(admin, name="admin")
admin.add_typer(keys, name="keys")
admin.command("audit")(audit_command)
app.add_typer(decks, name="decks")
app.command("eval")(eval_command)
app.command("analytics")(analytics_command)
app.command("usage")(usage_command)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=32, help="Processes serving the API (PODIUM_WEB_CONCURRENCY)."),
    ] = None,
) -> None:
    """Run the control plane HTTP API."""
    import uvicorn

    from control_plane.app import create_app

    settings = ControlPlaneSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if weak := settings.weak_secrets():  # only PODIUM_ENVIRONMENT=dev gets this far with them
        logger.warning(
            "PODIUM_ENVIRONMENT=dev: running with public development secrets; "
            "never expose this control plane",
            extra={"secrets": weak},
        )
    processes = workers or settings.web_concurrency
    if processes > 1:
        if settings.metrics_port is not None:
            raise typer.BadParameter(
                "PODIUM_METRICS_PORT needs one process per replica (each would bind it); "
                "run replicas of one process, or unset it."
            )
        # Each process builds its own app (settings from the same environment) and shares the
        # listening socket; everything app-scoped is per process, as it is per replica.
        uvicorn.run(
            "control_plane.app:create_app",
            factory=True,
            workers=processes,
            host=host or settings.host,
            port=port or settings.port,
            log_config=_worker_logging(),
            log_level="info",
            access_log=False,
        )
        return
    api = uvicorn.Config(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
    )
    if settings.metrics_port is None:
        uvicorn.Server(api).run()
        return
    from control_plane.metrics import create_metrics_app

    ops = uvicorn.Config(
        create_metrics_app(),
        host=host or settings.host,
        port=settings.metrics_port,
        log_level="info",  # uvicorn's loggers are shared: a lower level here mutes the API's
        access_log=False,
    )
    asyncio.run(_serve_together(uvicorn.Server(api), uvicorn.Server(ops)))


def _worker_logging() -> dict[str, Any]:
    """uvicorn's logging with the root logger as ``serve`` sets it up: a worker process is
    spawned, so it gets its logging from this, not from the parent's ``basicConfig``."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    config["handlers"]["plain"] = {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["plain"], "level": "INFO"}
    return config


async def _serve_together(api: uvicorn.Server, ops: uvicorn.Server) -> None:
    """The API and the metrics port in one process: when either stops (a signal reaches one of
    them), the other is told to stop too."""
    servers = {asyncio.create_task(api.serve()): ops, asyncio.create_task(ops.serve()): api}
    done, pending = await asyncio.wait(servers, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        servers[task].should_exit = True
    await asyncio.gather(*pending)
    for task in done:
        task.result()  # a server that failed to start says why


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""

    async def run() -> list[int]:
        conn = await db.connect(ControlPlaneSettings().migrations_dsn())
        try:
            return await apply_migrations(conn)
        finally:
            await conn.close()

    applied = asyncio.run(run())
    typer.echo(f"applied {len(applied)} migration(s): {applied}" if applied else "up to date")


@admin.command("create-tenant")
def create_tenant_cmd(
    name: Annotated[str, typer.Argument(help="The tenant's display name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Create a tenant and print its id and a new API key (shown only this once)."""

    async def run() -> tuple[str, str]:
        conn = await db.connect(ControlPlaneSettings().database_url.get_secret_value())
        try:
            await apply_migrations(conn)
            tenant = await create_tenant(conn, name)
        finally:
            await conn.close()
        return str(tenant.tenant_id), tenant.api_key

    try:
        tenant_id, api_key = asyncio.run(run())
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant_id, "name": name.strip(), "api_key": api_key}))
        return
    typer.echo(f"tenant_id: {tenant_id}")
    typer.echo(f"api_key:   {api_key}")
    typer.echo("Store the key now: it is not shown again.", err=True)


@admin.command("record-sessions")
def record_sessions_cmd(
    tenant_id: Annotated[UUID, typer.Argument(help="The tenant.")],
    state: Annotated[str, typer.Argument(help="'on' or 'off'.")],
) -> None:
    """Record new sessions of a tenant by default (a session's own "record" still decides)."""
    if state not in ("on", "off"):
        raise typer.BadParameter("use 'on' or 'off'", param_hint="STATE")

    async def run() -> bool:
        conn = await db.connect(ControlPlaneSettings().database_url.get_secret_value())
        try:
            await apply_migrations(conn)
            return await tenants.set_record_sessions(conn, tenant_id, state == "on")
        finally:
            await conn.close()

    if not asyncio.run(run()):
        typer.echo(f"error: no tenant {tenant_id}", err=True)
        raise typer.Exit(2)
    typer.echo(f"recording of new sessions: {state}")


@admin.command("limits")
def limits_cmd(
    tenant_id: Annotated[UUID, typer.Argument(help="The tenant.")],
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Set a limit; repeat for more."),
    ] = None,
    resets: Annotated[
        list[str] | None,
        typer.Option("--reset", metavar="NAME", help="Back to the default; repeat for more."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a tenant's limits (and which are the defaults), or change them. Every replica
    applies a change within seconds."""
    try:
        changes = parse_changes(assignments or [], resets or [])
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = ControlPlaneSettings()

    async def run() -> list[LimitValue]:
        conn = await db.connect(settings.database_url.get_secret_value())
        try:
            await apply_migrations(conn)
            if changes:
                await limits.change(conn, tenant_id, changes)
            return await limits.describe_tenant(conn, tenant_id, settings)
        finally:
            await conn.close()

    try:
        values = asyncio.run(run())
    except NotFound as exc:
        typer.echo(f"error: no tenant {tenant_id}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "tenant_id": str(tenant_id),
                    "limits": {v.name: v.value for v in values},
                    "defaults": [v.name for v in values if v.default],
                }
            )
        )
        return
    for v in values:
        typer.echo(f"{v.name:<26}{v.value:>6}  {'(default)' if v.default else ''}".rstrip())


@admin.command("data-policy")
def data_policy_cmd(
    tenant_id: Annotated[UUID, typer.Argument(help="The tenant.")],
    redaction: Annotated[
        str | None, typer.Option(help="'off', 'mask' or 'drop'; 'default' follows the default.")
    ] = None,
    retention: Annotated[
        list[str] | None,
        typer.Option(
            "--retention",
            metavar="KIND=DAYS",
            help=f"Days to keep {', '.join(RECORD_KINDS)}; DAYS 'default' follows the default. "
            "Repeat for more.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a tenant's data policy (redaction and retention), or change parts of it; parts not
    named keep their current value."""
    settings = ControlPlaneSettings()

    async def run() -> DataPolicy:
        conn = await db.connect(settings.database_url.get_secret_value())
        try:
            await apply_migrations(conn)
            current = await policy.get(conn, tenant_id, settings)
            if redaction is None and not retention:
                if not await tenants.exists(conn, tenant_id):
                    raise NotFound(f"Tenant {tenant_id} was not found.")
                return current
            update = policy.change(current, redaction, retention or [])
            return await policy.put(conn, tenant_id, update, settings)
        finally:
            await conn.close()

    try:
        result = asyncio.run(run())
    except (ValueError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except NotFound as exc:
        typer.echo(f"error: no tenant {tenant_id}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(result.model_dump_json())
        return
    mark = set(result.defaults)
    typer.echo(
        f"{'redaction':<22}{result.redaction:>6}  {'(default)' if 'redaction' in mark else ''}"
    )
    for kind in RECORD_KINDS:
        days = getattr(result.retention_days, kind)
        shown = "kept" if days is None else f"{days} d"
        typer.echo(f"{kind + ' retention':<22}{shown:>6}  {'(default)' if kind in mark else ''}")


@admin.command("retention-sweep")
def retention_sweep_cmd(
    tenant_id: Annotated[
        UUID | None, typer.Option("--tenant", help="Only this tenant (default: every tenant).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Delete the records past each tenant's retention now, with their files (what the control
    plane's sweeper does every PODIUM_RETENTION_SWEEP_SECONDS). Waits up to 60 s while a
    replica's sweep runs."""
    from control_plane.privacy.retention import SweepReport, sweep
    from control_plane.storage import LocalStorage

    settings = ControlPlaneSettings()

    async def run() -> SweepReport:
        dsn = settings.database_url.get_secret_value()
        conn = await db.connect(dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        pool = await db.create_pool(dsn, min_size=1, max_size=2, command_timeout=300)
        try:
            return await sweep(
                pool,
                LocalStorage(settings.asset_root),
                settings,
                tenant_id=tenant_id,
                lock_wait_s=60,
            )
        finally:
            await pool.close()

    report = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    elif report.skipped:
        typer.echo("another sweep is running (a control-plane replica's); try again later")
    else:
        typer.echo(
            f"deleted {sum(report.rows.values())} row(s) and {sum(report.files.values())} "
            f"file(s): rows {dict(report.rows)}, files {dict(report.files)}"
            + (f"; {report.files_failed} file deletion(s) failed" if report.files_failed else "")
        )
    if report.skipped:
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def replay(ctx: typer.Context) -> None:
    """Re-drive a session's recorded turns through the presenter (text mode) and compare:
    podium replay SESSION [--turn N] [--llm local|openai:MODEL] [--plot FILE.png].
    Reads PODIUM_API_URL and PODIUM_API_KEY (a tenant key); see --help of the worker tool."""
    import subprocess
    import sys

    # The presenter lives in the worker package; the control plane never imports it.
    done = subprocess.run([sys.executable, "-m", "agent_worker.replay", *ctx.args], check=False)
    raise typer.Exit(done.returncode)


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        if exc.title != ControlPlaneSettings.__name__:
            raise
        # The settings refuse to start (e.g. public secrets outside dev): say why, no traceback.
        # Their errors never echo an input value (hide_input_in_errors), so no secret is shown.
        for error in exc.errors():
            where = ".".join(map(str, error["loc"]))
            problem = error["msg"].removeprefix("Value error, ")
            typer.echo(
                f"error: invalid settings: {f'{where}: ' if where else ''}{problem}", err=True
            )
        raise SystemExit(2) from None
