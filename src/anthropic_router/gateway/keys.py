"""Client keys kept in the store: created, listed and revoked from the CLI, looked up by the
server through a short-lived cache.

Only the SHA-256 of a key is stored. A key is 256 random bits, so a fast hash is enough (no
password-style KDF: there is nothing to brute-force) and the lookup is an index probe on the
hash, whose timing says nothing about the key; the hash found is compared once more in
constant time. The key's id is `key_` + 12 hex digits of its hash, the same id the exchange
log has always shown for a client key (`observability.key_id`).

Lookups are cached for KEYS_CACHE_TTL seconds, misses too (bounded), so a request costs a
dict probe and revocation reaches every instance within that time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from anthropic_router.errors import ApiError
from anthropic_router.store import IntegrityError, Store, StoreError

log = logging.getLogger("anthropic_router.keys")

KEY_PREFIX = "sk-ar-"
PERIODS = ("day", "month")
_CACHE_LIMIT = 10_000  # distinct presented keys remembered (bad keys included)


class KeysError(ValueError):
    """A CLI request about keys that cannot be done (duplicate name, unknown key)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    prefix: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] | None = None
    key_hash: str = ""

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def public(self) -> dict[str, Any]:
        """What `keys list/show --json` prints: everything but the hash."""
        data = asdict(self)
        data.pop("key_hash")
        data["models"] = list(self.models) if self.models is not None else None
        for name in ("created_at", "expires_at", "revoked_at"):
            data[name] = iso_time(data[name])
        data["status"] = self.status(time.time())
        return data

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key_hash: str) -> str:
    return "key_" + key_hash[:12]


def iso_time(value: float | None) -> str | None:
    if value is None:
        return None
    moment = dt.datetime.fromtimestamp(value, dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def parse_iso_time(text: str) -> float:
    """An ISO 8601 / RFC 3339 date-time (`Z` allowed) in epoch seconds, UTC when it names
    no zone; ValueError when it is none."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def parse_expiry(text: str) -> float:
    """`2026-12-31` (the key works through that day, UTC) or an ISO date-time."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
            return end.timestamp()
        return parse_iso_time(text)
    except ValueError:
        raise KeysError(f"--expires {text!r}: expected YYYY-MM-DD or an ISO date-time") from None


def _row_record(row: dict[str, Any]) -> KeyRecord:
    models = json.loads(row["models"]) if row.get("models") else None
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["key_prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        budget_usd=row["budget_usd"],
        budget_period=row["budget_period"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        models=tuple(models) if models is not None else None,
        key_hash=row["key_hash"],
    )


async def create_key(
    store: Store,
    name: str,
    *,
    budget_usd: float | None = None,
    budget_period: str | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    models: list[str] | None = None,
    expires_at: float | None = None,
) -> tuple[str, KeyRecord]:
    """A new key named `name`: returns the key (shown once, never stored) and its record."""
    if budget_usd is not None and budget_period not in PERIODS:
        raise KeysError("--budget-usd needs --per day or --per month")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = hash_key(key)
    record = KeyRecord(
        id=key_id_of(digest),
        name=name,
        prefix=key[: len(KEY_PREFIX) + 4],
        created_at=time.time(),
        expires_at=expires_at,
        budget_usd=budget_usd,
        budget_period=budget_period if budget_usd is not None else None,
        rpm=rpm,
        tpm=tpm,
        models=tuple(models) if models else None,
        key_hash=digest,
    )
    try:
        await store.execute(
            "INSERT INTO api_keys (id, name, key_hash, key_prefix, created_at, expires_at,"
            " budget_usd, budget_period, rpm, tpm, models) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id, record.name, digest, record.prefix, record.created_at,
                record.expires_at, record.budget_usd, record.budget_period, record.rpm,
                record.tpm, json.dumps(list(record.models)) if record.models else None,
            ),
        )  # fmt: skip
    except IntegrityError:
        raise KeysError(f"a key named {name!r} already exists") from None
    return key, record


async def list_keys(store: Store) -> list[KeyRecord]:
    rows = await store.fetch("SELECT * FROM api_keys ORDER BY created_at, name")
    return [_row_record(row) for row in rows]


async def find_key(store: Store, name: str) -> KeyRecord:
    """The key named `name` (or with that id)."""
    row = await store.fetchone("SELECT * FROM api_keys WHERE name = ? OR id = ?", (name, name))
    if row is None:
        raise KeysError(f"no key named {name!r}")
    return _row_record(row)


async def revoke_key(store: Store, name: str) -> KeyRecord:
    record = await find_key(store, name)
    if record.revoked_at is None:
        await store.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (time.time(), record.id)
        )
    return await find_key(store, name)


class KeyCache:
    """Presented key -> its record (or None), from the store, cached for `ttl` seconds."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._entries: dict[str, tuple[float, KeyRecord | None]] = {}
        self._by_id: dict[str, tuple[float, KeyRecord | None]] = {}

    async def by_id(self, key_id: str) -> KeyRecord | None:
        """The record of key `key_id` (a batch's owner), cached like `lookup`; None when
        it is no store key (a PROXY_API_KEY key's id) or the store cannot say."""
        now = time.monotonic()
        entry = self._by_id.get(key_id)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        try:
            row = await self.store.fetchone("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        except StoreError:
            return entry[1] if entry is not None else None
        if len(self._by_id) >= _CACHE_LIMIT:
            self._by_id.clear()
        record = _row_record(row) if row is not None else None
        self._by_id[key_id] = (now, record)
        return record

    async def lookup(self, presented: str) -> KeyRecord | None:
        """The record of a usable or unusable key; None when the store has no such key."""
        digest = hash_key(presented)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        try:
            row = await self.store.fetchone("SELECT * FROM api_keys WHERE key_hash = ?", (digest,))
        except StoreError as error:
            return self._unreachable(entry, error)
        record = _row_record(row) if row is not None else None
        if record is not None and not hmac.compare_digest(record.key_hash, digest):
            record = None
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()  # a flood of bad keys must not grow memory without bound
        self._entries[digest] = (now, record)
        return record

    def _unreachable(
        self, entry: tuple[float, KeyRecord | None] | None, error: StoreError
    ) -> KeyRecord | None:
        """The store did not answer: keep serving keys already known (the last answer about
        them stands), refuse the rest with a 503 the client may retry."""
        log.warning("key lookup failed", extra={"fields": {"error": str(error)}})
        if entry is not None:
            return entry[1]
        raise ApiError(
            "api_error", "the key store is unreachable; try again", status=503, retry_after="1"
        )
