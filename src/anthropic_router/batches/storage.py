"""The batch tables (store/migrations/0010_batches.sql): every statement batches run.

Exactly-once rests on two things. A claim takes pending requests whose `available_at` has
passed (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so instances never take the same rows; SQLite:
the single writer) and bumps `attempts`. Every later write names the `attempts` it claimed
and the instance's `lease_owner`; when a lease ran out and another instance reclaimed the
request, the old owner's write matches no row and is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from anthropic_router.store import Store, Tx

JSON = dict[str, Any]

_BATCH_COLUMNS = (
    "id, owner, status, total, headers, created_at, expires_at, cancel_initiated_at, "
    "ended_at, archived_at, succeeded, errored, canceled, expired"
)


@dataclass(slots=True)
class Claimed:
    """One request an instance holds a lease on."""

    batch_id: str
    position: int
    custom_id: str
    params: str
    attempts: int


async def insert_batch(store: Store, batch: JSON, requests: Sequence[tuple[str, str]]) -> None:
    """The batch row and its requests (custom_id, params JSON), in one transaction."""
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO message_batches (id, owner, status, total, headers, created_at, "
            "expires_at) VALUES (?, ?, 'in_progress', ?, ?, ?, ?)",
            (
                batch["id"],
                batch["owner"],
                len(requests),
                batch["headers"],
                batch["created_at"],
                batch["expires_at"],
            ),
        )
        rows = (
            (batch["id"], position, custom_id, params, batch["created_at"])
            for position, (custom_id, params) in enumerate(requests)
        )
        await tx.executemany(
            "INSERT INTO message_batch_requests (batch_id, position, custom_id, params, state, "
            "available_at) VALUES (?, ?, ?, ?, 'pending', ?)",
            rows,
        )


async def get_batch(store: Store, batch_id: str, owner: str | None = None) -> JSON | None:
    """The batch row, or None when there is none (or, with `owner`, it is someone else's)."""
    sql = f"SELECT {_BATCH_COLUMNS} FROM message_batches WHERE id = ?"
    params: tuple[Any, ...] = (batch_id,)
    if owner is not None:
        sql += " AND owner = ?"
        params += (owner,)
    return await store.fetchone(sql, params)


async def list_batches(
    store: Store,
    owner: str | None,
    limit: int,
    after: JSON | None = None,
    before: JSON | None = None,
) -> tuple[list[JSON], bool]:
    """Newest first. `after`/`before` are cursor rows; returns (rows, has_more)."""
    where, params = ["1 = 1"], []
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    order = "DESC"
    if after is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [after["created_at"], after["created_at"], after["id"]]
    elif before is not None:
        where.append("(created_at > ? OR (created_at = ? AND id > ?))")
        params += [before["created_at"], before["created_at"], before["id"]]
        order = "ASC"  # the nearest newer ones, turned round below
    rows = await store.fetch(
        f"SELECT {_BATCH_COLUMNS} FROM message_batches WHERE {' AND '.join(where)} "
        f"ORDER BY created_at {order}, id {order} LIMIT ?",
        (*params, limit + 1),
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if order == "ASC":
        rows.reverse()
    return rows, has_more


async def cancel_batch(store: Store, batch_id: str, now: float) -> None:
    """Mark the batch canceling and its requests that are not running canceled; running
    ones finish (the runner ends the batch when the last one does)."""
    async with store.transaction() as tx:
        changed = await tx.execute(
            "UPDATE message_batches SET status = 'canceling', cancel_initiated_at = ? "
            "WHERE id = ? AND status = 'in_progress'",
            (now, batch_id),
        )
        if changed:
            await tx.execute(_SETTLE_UNLEASED, ("canceled", now, batch_id, now))


# Pending requests nobody is running (never claimed, waiting on a backoff, or their lease ran
# out) get a final state.
_SETTLE_UNLEASED = (
    "UPDATE message_batch_requests SET state = ?, params = NULL, lease_owner = NULL, "
    "finished_at = ? WHERE batch_id = ? AND state = 'pending' "
    "AND (lease_owner IS NULL OR available_at <= ?)"
)


async def delete_batch(store: Store, batch_id: str) -> None:
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM message_batch_requests WHERE batch_id = ?", (batch_id,))
        await tx.execute("DELETE FROM message_batches WHERE id = ?", (batch_id,))


async def result_rows(store: Store, batch_id: str, page_size: int) -> AsyncIterator[list[JSON]]:
    """The finished requests, a page at a time (keyset on position), so a results file of
    any size is never held whole in memory."""
    position = -1
    while True:
        rows = await store.fetch(
            "SELECT position, custom_id, state, result FROM message_batch_requests "
            "WHERE batch_id = ? AND position > ? ORDER BY position LIMIT ?",
            (batch_id, position, page_size),
        )
        if not rows:
            return
        yield rows
        position = int(rows[-1]["position"])


def _claim_sql(dialect: str) -> str:
    lock = " FOR UPDATE OF r SKIP LOCKED" if dialect == "postgresql" else ""
    return (
        "UPDATE message_batch_requests SET lease_owner = ?, available_at = ?, "
        "attempts = attempts + 1 WHERE (batch_id, position) IN ("
        "SELECT r.batch_id, r.position FROM message_batch_requests r "
        "JOIN message_batches b ON b.id = r.batch_id "
        "WHERE r.state = 'pending' AND r.available_at <= ? "
        "AND b.status = 'in_progress' AND b.expires_at > ? "
        f"ORDER BY r.available_at, r.position LIMIT ?{lock}) "
        "RETURNING batch_id, position, custom_id, params, attempts"
    )


async def claim(
    store: Store, owner: str, limit: int, now: float, lease_seconds: float
) -> list[Claimed]:
    """Lease up to `limit` requests that are due, oldest first."""
    return await _claim(store, store.dialect, owner, limit, now, lease_seconds)


async def _claim(
    db: Store | Tx, dialect: str, owner: str, limit: int, now: float, lease_seconds: float
) -> list[Claimed]:
    rows = await db.fetch(_claim_sql(dialect), (owner, now + lease_seconds, now, now, limit))
    claimed = [
        Claimed(r["batch_id"], int(r["position"]), r["custom_id"], r["params"], int(r["attempts"]))
        for r in rows
    ]
    claimed.sort(key=lambda c: (c.batch_id, c.position))  # RETURNING has no order
    return claimed


async def renew(store: Store, owner: str, until: float) -> int:
    """Extend every lease this instance holds (one statement, whatever their number)."""
    return await store.execute(
        "UPDATE message_batch_requests SET available_at = ? "
        "WHERE lease_owner = ? AND state = 'pending'",
        (until, owner),
    )


_FENCE = (
    "WHERE batch_id = ? AND position = ? AND state = 'pending' AND lease_owner = ? AND attempts = ?"
)


_FINISH = (
    "UPDATE message_batch_requests SET state = ?, result = ?, params = NULL, "
    f"lease_owner = NULL, finished_at = ? {_FENCE}"
)


async def finish(
    store: Store, owner: str, item: Claimed, state: str, result: bytes, now: float
) -> bool:
    """Write the result; False when the lease was lost (someone else owns the request now)."""
    return (await finish_many(store, owner, [(item, state, result)], now))[0]


async def finish_many(
    store: Store, owner: str, done: Sequence[tuple[Claimed, str, bytes]], now: float
) -> list[bool]:
    """Write several results in one transaction (one commit instead of one per request);
    for each, whether it was written (False: the lease was lost)."""
    async with store.transaction() as tx:
        return await _finish(tx, owner, done, now)


async def finish_and_claim(
    store: Store,
    owner: str,
    done: Sequence[tuple[Claimed, str, bytes]],
    limit: int,
    now: float,
    lease_seconds: float,
) -> tuple[list[bool], list[Claimed]]:
    """`finish_many` and `claim` in one transaction: the runner's turn costs one commit."""
    async with store.transaction() as tx:
        written = await _finish(tx, owner, done, now)
        claimed = await _claim(tx, store.dialect, owner, limit, now, lease_seconds) if limit else []
    return written, claimed


async def _finish(
    tx: Tx, owner: str, done: Sequence[tuple[Claimed, str, bytes]], now: float
) -> list[bool]:
    written = []
    for item, state, result in done:
        changed = await tx.execute(
            _FINISH,
            (state, result.decode(), now, item.batch_id, item.position, owner, item.attempts),
        )
        written.append(changed == 1)
    return written


async def retry_later(store: Store, owner: str, item: Claimed, at: float) -> bool:
    """Give the request back, to be claimed again (by anyone) from `at`."""
    changed = await store.execute(
        f"UPDATE message_batch_requests SET lease_owner = NULL, available_at = ? {_FENCE}",
        (at, item.batch_id, item.position, owner, item.attempts),
    )
    return changed == 1


async def release(store: Store, owner: str, now: float) -> int:
    """At shutdown: hand back what this instance holds so others need not wait for the lease."""
    return await store.execute(
        "UPDATE message_batch_requests SET lease_owner = NULL, available_at = ? "
        "WHERE lease_owner = ? AND state = 'pending'",
        (now, owner),
    )


async def end_if_done(store: Store, batch_id: str, now: float) -> bool:
    """End the batch when no request is pending: counts are taken once, here."""
    pending = await store.fetchone(
        "SELECT 1 AS found FROM message_batch_requests "
        "WHERE batch_id = ? AND state = 'pending' LIMIT 1",
        (batch_id,),
    )
    if pending is not None:
        return False
    counts = ", ".join(
        f"{name} = (SELECT COUNT(*) FROM message_batch_requests "
        f"WHERE batch_id = ? AND state = '{name}')"
        for name in ("succeeded", "errored", "canceled", "expired")
    )
    changed = await store.execute(
        f"UPDATE message_batches SET status = 'ended', ended_at = ?, {counts} "
        "WHERE id = ? AND status <> 'ended'",
        (now, batch_id, batch_id, batch_id, batch_id, batch_id),
    )
    return changed == 1


async def sweep(store: Store, now: float, retention_seconds: float) -> list[str]:
    """Housekeeping any instance may run at any time: requests of canceling batches and of
    expired ones settle (unless running), batches with nothing pending end, batches ended
    longer than the retention ago are archived (their requests removed). Returns the ids of
    batches that ended now."""
    for status, state in (("canceling", "canceled"), ("in_progress", "expired")):
        expiry = " AND expires_at <= ?" if state == "expired" else ""
        open_batches = await store.fetch(
            f"SELECT id FROM message_batches WHERE status = ?{expiry}",
            (status, now) if expiry else (status,),
        )
        for row in open_batches:
            await store.execute(_SETTLE_UNLEASED, (state, now, row["id"], now))
    # A canceling batch past its expiry: whatever is left expires too.
    for row in await store.fetch(
        "SELECT id FROM message_batches WHERE status = 'canceling' AND expires_at <= ?", (now,)
    ):
        await store.execute(_SETTLE_UNLEASED, ("expired", now, row["id"], now))
    ended = []
    for row in await store.fetch("SELECT id FROM message_batches WHERE status <> 'ended'"):
        if await end_if_done(store, row["id"], now):
            ended.append(str(row["id"]))
    await archive(store, now - retention_seconds, now)
    return ended


async def archive(store: Store, ended_before: float, now: float) -> int:
    rows = await store.fetch(
        "SELECT id FROM message_batches WHERE status = 'ended' AND archived_at IS NULL "
        "AND ended_at < ?",
        (ended_before,),
    )
    for row in rows:
        async with store.transaction() as tx:
            await tx.execute("DELETE FROM message_batch_requests WHERE batch_id = ?", (row["id"],))
            await tx.execute(
                "UPDATE message_batches SET archived_at = ? WHERE id = ?", (now, row["id"])
            )
    return len(rows)


async def gauges(store: Store) -> tuple[dict[str, int], int]:
    """Batches by status, and requests waiting to be run (the queue depth)."""
    rows = await store.fetch("SELECT status, COUNT(*) AS n FROM message_batches GROUP BY status")
    depth = await store.fetchone(
        "SELECT COUNT(*) AS n FROM message_batch_requests WHERE state = 'pending'"
    )
    return {str(r["status"]): int(r["n"]) for r in rows}, int(depth["n"]) if depth else 0
