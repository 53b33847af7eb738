"""Deleting the asset files of deleted records.

Rows and files cannot share a transaction, so the order is: the keys are listed in
``asset_deletions`` in the transaction that deletes the rows, the files are deleted once it
committed, and each listing goes with its files. Deleting files first would leave rows
pointing at nothing whenever the transaction then failed; a listing left behind by a failed
delete or a process that died in between is retried by every retention sweep, so a crash
leaves nothing orphaned for good.
"""

from __future__ import annotations

import logging
from collections import Counter
from uuid import UUID

import asyncpg

from control_plane.privacy import repository
from control_plane.storage import AssetStorage, InvalidKey

logger = logging.getLogger(__name__)


async def delete_listed(
    pool: asyncpg.Pool,
    storage: AssetStorage,
    *,
    ids: list[int] | None = None,
    tenant_id: UUID | None = None,
    limit: int = 500,
) -> tuple[Counter[str], int]:
    """Delete the files of the listings ``ids`` (None: every pending one, oldest first, of the
    tenant when given); returns the files deleted per reason, and how many listings failed and
    stay for the next sweep."""
    deleted: Counter[str] = Counter()
    failed = 0
    for row in await repository.pending_asset_deletions(
        pool, ids=ids, tenant_id=tenant_id, limit=limit
    ):
        try:
            deleted[row["reason"]] += await storage.delete_tree(row["key"])
        except InvalidKey:
            pass  # a key storage could never have held: nothing to delete
        except OSError as exc:
            failed += 1
            await repository.asset_deletion_failed(pool, row["id"], type(exc).__name__)
            logger.warning(
                "could not delete an asset; retrying at the next retention sweep",
                extra={"deletion_id": row["id"], "error": type(exc).__name__},
            )
            continue
        await repository.asset_deleted(pool, row["id"])
    return deleted, failed
