"""The retention sweeper: deletes each tenant's records once they are older than its policy
keeps them (``control_plane.privacy.policy``), with their asset files.

Ages count from the session's end (decks: from upload). Per kind:

- ``transcripts``: the session's messages, escalations, and the deliveries of
  ``escalation.requested`` and ``transcript.ready`` about it;
- ``turns``: the turn log;
- ``recordings``: the recording's segments and their files (and a recording stored whole
  before segments), and the redaction spans;
- ``events``: slide transitions and the session's event timeline (``audit_events``);
- ``decks``: the deck (its slides and chunks cascade) and its files, unless a live session
  uses it.

The session's row stays (``DELETE /v1/sessions/{id}`` removes it). A session whose job may still
send records (ended within ``PODIUM_RECORDS_GRACE_SECONDS`` and not reported complete) waits.

One replica sweeps at a time (a Postgres advisory lock), in batches of at most ``BATCH``
sessions (or decks) per kind, each batch its own transaction, until nothing is left; all its
state is in Postgres, so a restart just sweeps again. Each batch raises one ``records.expired``
webhook per session and kind (per deck), in its transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge

from control_plane.background import BackgroundLoop
from control_plane.privacy import files, repository
from control_plane.privacy.policy import RECORD_KINDS, RecordKind, default_days
from control_plane.storage import AssetStorage
from shared.settings import ControlPlaneSettings

logger = logging.getLogger(__name__)

# Sessions (or decks) per transaction: each batch's statements stay well within the pool's
# command timeout however large the backlog.
BATCH = 200
# pg_try_advisory_lock key: "RETAIN" in ASCII. Distinct from the migrations' lock.
LOCK_KEY = 0x52455441494E

ROWS_DELETED = MetricCounter(
    "podium_retention_rows_deleted_total", "Rows deleted by the retention sweeper.", ["kind"]
)
FILES_DELETED = MetricCounter(
    "podium_retention_files_deleted_total",
    "Asset files deleted after their rows, by kind (or session_deleted, erasure: files those "
    "left for the sweeper to retry).",
    ["kind"],
)
LAST_SWEEP = Gauge(
    "podium_retention_last_sweep_timestamp_seconds",
    "When this replica last finished a retention sweep (Unix time).",
)
FILES_FAILED = Gauge(
    "podium_retention_file_deletions_failed",
    "Asset deletions that failed in this replica's last sweep (retried at the next one).",
)

_DELETERS = {
    "transcripts": repository.delete_transcripts,
    "turns": repository.delete_turns,
    "events": repository.delete_events,
}


@dataclass
class SweepReport:
    """What one sweep deleted: rows per table, files per kind, sessions and decks expired."""

    rows: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)
    sessions: Counter[str] = field(default_factory=Counter)
    decks: int = 0
    files_failed: int = 0
    skipped: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "rows": dict(self.rows),
            "files": dict(self.files),
            "sessions": dict(self.sessions),
            "decks": self.decks,
            "files_failed": self.files_failed,
            "seconds": round(self.seconds, 3),
        }


async def sweep(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    settings: ControlPlaneSettings,
    *,
    tenant_id: UUID | None = None,
    lock_wait_s: float = 0.0,
    batch: int = BATCH,
) -> SweepReport:
    """One sweep over every tenant (or the one named). ``skipped`` when another replica holds
    the sweep's lock for longer than ``lock_wait_s``."""
    started = time.monotonic()
    report = SweepReport()
    async with pool.acquire() as lock:
        deadline = started + lock_wait_s
        while not await lock.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            if time.monotonic() >= deadline:
                report.skipped = True
                return report
            await asyncio.sleep(0.5)
        try:
            await _sweep(pool, storage, settings, tenant_id, batch, report)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    report.seconds = time.monotonic() - started
    LAST_SWEEP.set(time.time())
    FILES_FAILED.set(report.files_failed)
    logger.info("retention sweep done", extra=report.as_dict())
    return report


async def _sweep(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    settings: ControlPlaneSettings,
    tenant_id: UUID | None,
    batch: int,
    report: SweepReport,
) -> None:
    # Files left by earlier deletions (a failed delete, a process that died) first.
    await _delete_files(pool, storage, report, tenant_id=tenant_id, limit=10 * batch)
    for tenant in await repository.tenants_with_policy(pool, tenant_id):
        for kind in RECORD_KINDS:
            stored = tenant[f"{kind}_days"]
            days = default_days(settings, kind) if stored is None else int(stored)
            if days is None:
                continue
            if kind == "decks":
                await _expire_decks(pool, storage, tenant["id"], days, batch, report)
            else:
                await _expire_sessions(
                    pool, storage, settings, tenant["id"], kind, days, batch, report
                )


async def _expire_sessions(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    settings: ControlPlaneSettings,
    tenant_id: UUID,
    kind: RecordKind,
    days: int,
    batch: int,
    report: SweepReport,
) -> None:
    while True:
        sessions = await repository.expired_sessions(
            pool,
            tenant_id,
            kind,
            days=days,
            records_grace_s=settings.records_grace_seconds,
            limit=batch,
        )
        if not sessions:
            return
        keys: list[str] = []
        async with pool.acquire() as conn, conn.transaction():
            if kind == "recordings":
                found, keys = await repository.delete_recordings(conn, tenant_id, sessions)
            else:
                found = await _DELETERS[kind](conn, tenant_id, sessions)
            listed = await repository.queue_asset_deletions(conn, tenant_id, keys, kind)
            for session_id in sessions:
                deleted = {name: counts[session_id] for name, counts in found.items()}
                await repository.webhook_event(
                    conn,
                    tenant_id,
                    "records.expired",
                    f"records.expired:{kind}:{session_id}",
                    {
                        "session_id": str(session_id),
                        "kind": kind,
                        "retention_days": days,
                        "deleted": deleted,
                    },
                )
        rows = sum(sum(counts.values()) for counts in found.values())
        for name, counts in found.items():
            report.rows[name] += sum(counts.values())
        report.sessions[kind] += len(sessions)
        ROWS_DELETED.labels(kind).inc(rows)
        if listed:
            await _delete_files(pool, storage, report, ids=listed)
        if len(sessions) < batch or rows == 0:
            return


async def _expire_decks(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    tenant_id: UUID,
    days: int,
    batch: int,
    report: SweepReport,
) -> None:
    while True:
        candidates = await repository.expired_decks(pool, tenant_id, days=days, limit=batch)
        if not candidates:
            return
        async with pool.acquire() as conn, conn.transaction():
            decks = await repository.delete_decks(conn, tenant_id, candidates)
            listed = await repository.queue_asset_deletions(
                conn, tenant_id, [f"decks/{d}" for d in decks], "decks"
            )
            for deck_id in decks:
                await repository.webhook_event(
                    conn,
                    tenant_id,
                    "records.expired",
                    f"records.expired:decks:{deck_id}",
                    {"deck_id": str(deck_id), "kind": "decks", "retention_days": days},
                )
        report.decks += len(decks)
        report.rows["decks"] += len(decks)
        ROWS_DELETED.labels("decks").inc(len(decks))
        await _delete_files(pool, storage, report, ids=listed)
        if len(candidates) < batch or not decks:
            return


async def _delete_files(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    report: SweepReport,
    *,
    ids: list[int] | None = None,
    tenant_id: UUID | None = None,
    limit: int = BATCH,
) -> None:
    if ids == []:
        return
    deleted, failed = await files.delete_listed(
        pool, storage, ids=ids, tenant_id=tenant_id, limit=limit
    )
    for reason, n in deleted.items():
        report.files[reason] += n
        FILES_DELETED.labels(reason).inc(n)
    report.files_failed += failed


class RetentionSweeper(BackgroundLoop):
    """Sweeps at start and then every ``PODIUM_RETENTION_SWEEP_SECONDS``."""

    name = "retention_sweeper"

    def __init__(
        self, pool: asyncpg.Pool, storage: AssetStorage, settings: ControlPlaneSettings
    ) -> None:
        self._pool = pool
        self._storage = storage
        self._settings = settings

    async def _run(self) -> None:
        while True:
            try:
                await sweep(self._pool, self._storage, self._settings)
            except Exception:  # one bad round (Postgres, storage) must not stop the sweeper
                logger.exception("retention sweep failed")
            await asyncio.sleep(self._settings.retention_sweep_seconds)
