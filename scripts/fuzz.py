"""Fuzz triage: the generator of tests/reliability/test_fuzz.py, without stopping at the first
failure, grouping what went wrong by the router's traceback.

    python scripts/fuzz.py --examples 5000             # skips inputs of already-known bugs

The pytest property stops at (and shrinks) the first counterexample; this runs every example,
then prints one JSON summary: answers by status, failed properties grouped by message, router
tracebacks grouped by their last frame, and one (truncated) payload per group to start a repro
from. Exits 1 when anything failed. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reliability import test_fuzz as fuzz
from reliability.shapes import log_errors
from support.router import RouterProcess
from support.upstream import FakeUpstream


def traceback_groups(logs: str) -> dict[str, int]:
    """Router error records (see `log_errors`), grouped by last frame and exception line."""
    groups: collections.Counter[str] = collections.Counter()
    for line in log_errors(logs):
        try:
            record = json.loads(line)
        except ValueError:
            groups[f"non-JSON | {line[:160]}"] += 1
            continue
        text = str(record.get("exc") or record.get("stack") or "")
        frames = [part.strip() for part in text.splitlines() if part.strip().startswith("File ")]
        last = (text.strip().splitlines() or [str(record.get("msg"))])[-1]
        groups[f"{frames[-1] if frames else record.get('logger')} | {last[:160]}"] += 1
    return dict(groups.most_common())


def run(examples: int) -> dict[str, Any]:
    statuses: collections.Counter[str] = collections.Counter()
    failures: dict[str, dict[str, Any]] = {}

    def fail(key: str, path: str, payload: bytes) -> None:
        group = failures.setdefault(key, {"count": 0, "path": path, "example": ""})
        group["count"] += 1
        group["example"] = group["example"] or payload[:1500].decode("utf-8", "replace")

    with (
        FakeUpstream() as upstream,
        RouterProcess(upstream.url, {"UPSTREAM_MAX_RETRIES": "0"}) as router,
        httpx.Client(base_url=router.url, timeout=30, trust_env=False) as http,
    ):

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(request=fuzz.requests)
        def one(request: Any) -> None:
            (_, payload), path, content_type = request
            headers = {"content-type": content_type} if content_type else {}
            try:
                response = http.post(path, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                statuses["no answer"] += 1
                fail(f"{type(exc).__name__}: {exc}", path, payload)
                return
            statuses[str(response.status_code)] += 1
            try:
                fuzz.check_answer(path, response)
            except AssertionError as exc:
                fail(str(exc).splitlines()[0][:160], path, payload)
            upstream.clear()

        one()
        logs = router.logs()
    return {
        "statuses": dict(statuses.most_common()),
        "failed_properties": failures,
        "router_tracebacks": traceback_groups(logs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    summary = run(args.examples)
    summary = {
        "command": " ".join(["python", "scripts/fuzz.py", *sys.argv[1:]]),
        "examples": args.examples,
        "seconds": round(time.monotonic() - started, 1),
        **summary,
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if summary["failed_properties"] or summary["router_tracebacks"] else 0


if __name__ == "__main__":
    sys.exit(main())
