"""Anthropic's Message Batches shapes, built from store rows: pure functions, no I/O.

See docs/15-batches.md and the SDK's `anthropic.types.messages` (MessageBatch,
MessageBatchIndividualResponse, DeletedMessageBatch).
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

import orjson

JSON = dict[str, Any]

# The request states a batch ends with; "pending" is the only other one.
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
STATUSES = ("in_progress", "canceling", "ended")

_ALPHABET = string.ascii_letters + string.digits
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BATCH_ID = re.compile(r"^msgbatch_[A-Za-z0-9]{1,64}$")


def new_batch_id() -> str:
    """`msgbatch_01` and 22 random base62 characters, like Anthropic's ids (about 131 bits)."""
    return "msgbatch_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def rfc3339(seconds: float | None) -> str | None:
    """Unix seconds as the RFC 3339 UTC text Anthropic uses (`2024-08-20T18:37:24.100435Z`)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request_counts(row: JSON) -> JSON:
    """Every request counts as processing until the batch ends (Anthropic's rule), so the
    counts always sum to the total."""
    if row["status"] != "ended":
        return {"processing": int(row["total"]), **{name: 0 for name in RESULT_TYPES}}
    counts = {name: int(row[name]) for name in RESULT_TYPES}
    return {"processing": int(row["total"]) - sum(counts.values()), **counts}


def message_batch(row: JSON, base_url: str) -> JSON:
    """A `message_batch` object from a `message_batches` row; `base_url` is where the client
    reached the router (scheme, host and any path prefix), for `results_url`."""
    ended = row["status"] == "ended"
    results = ended and row.get("archived_at") is None
    return {
        "id": row["id"],
        "type": "message_batch",
        "processing_status": row["status"],
        "request_counts": request_counts(row),
        "created_at": rfc3339(row["created_at"]),
        "expires_at": rfc3339(row["expires_at"]),
        "ended_at": rfc3339(row.get("ended_at")),
        "cancel_initiated_at": rfc3339(row.get("cancel_initiated_at")),
        "archived_at": rfc3339(row.get("archived_at")),
        "results_url": f"{base_url}/v1/messages/batches/{row['id']}/results" if results else None,
    }


def deleted_batch(batch_id: str) -> JSON:
    return {"id": batch_id, "type": "message_batch_deleted"}


def page(items: list[JSON], has_more: bool) -> JSON:
    """A list page; the SDK's `SyncPage` asks for the next with `after_id=last_id`
    (or `before_id=first_id`)."""
    return {
        "data": items,
        "has_more": has_more,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
    }


def succeeded(message: JSON) -> bytes:
    return orjson.dumps({"type": "succeeded", "message": message})


def errored(error_body: JSON) -> bytes:
    """`error_body` is the whole error response /v1/messages would have sent
    (`{"type":"error","error":{...},"request_id":...}`)."""
    return orjson.dumps({"type": "errored", "error": error_body})


def result_line(custom_id: str, state: str, result: str | bytes | None) -> bytes:
    """One JSONL line of the results file. The stored `result` is spliced in as it is, so a
    large Message is never parsed again on the way out."""
    if result is None:  # canceled and expired carry nothing else
        result = orjson.dumps({"type": state})
    elif isinstance(result, str):
        result = result.encode()
    return b'{"custom_id":' + orjson.dumps(custom_id) + b',"result":' + result + b"}\n"
