"""A bounded soak of the real router: many mixed requests, random client disconnects, and the
router process's RSS, open file descriptors and upstream connections before, during and after.

    python scripts/soak.py                      # 10,000 requests, 32 at a time (docs/09)
    python scripts/soak.py --requests 2000 --keepalive-settle 0

Starts a fake OpenAI-compatible upstream (tests/support) and the router as a subprocess, both on
127.0.0.1, then sends the requests with httpx: about half streaming (20 chunks, 5 ms apart),
`--disconnect` of all requests are streams the client closes after the first bytes, and
`--fault-share` of upstream answers are 500s (UPSTREAM_MAX_RETRIES=0, so they reach the
client). Prints one JSON summary; exits 1 when an answer was unexpected or the router logged an
error, 2 when the time limit cut the run short.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reliability.shapes import log_errors
from support import openai_chunks as oc
from support import replies
from support.router import RouterProcess
from support.upstream import FakeUpstream, Recorded

STREAM_CHUNKS = [*oc.text_chunks("soak " * 40, 18), oc.finish_chunk(), oc.usage_chunk()]
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64}
T0 = time.monotonic()


class SoakUpstream(FakeUpstream):
    """Answers by the request's `stream` flag (scripts cannot be matched to concurrent
    requests), fails `fault_share` of them with a 500, and only counts what it receives."""

    def __init__(self, fault_share: float, stream_delay: float) -> None:
        super().__init__()
        self.fault_share = fault_share
        self.stream_delay = stream_delay
        self.received = 0
        self.disconnected = 0
        self._count_lock = threading.Lock()
        self._random = random.Random(11)

    def take_reply(self, request: Recorded) -> replies.Reply:
        with self._count_lock:
            fault = self._random.random() < self.fault_share
        if fault:
            return replies.error(500, "soak fault")
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("stream"):
            return _Counted(replies.sse(STREAM_CHUNKS, delay=self.stream_delay), self)
        return replies.completion("soak answer")

    def record(self, request: Recorded) -> None:
        with self._count_lock:
            self.received += 1


class _Counted(replies.Reply):
    """Counts the streams whose client (the router) closed the connection mid-body."""

    def __init__(self, reply: replies.Reply, upstream: SoakUpstream) -> None:
        self.reply, self.upstream = reply, upstream

    def send(self, conn: replies.Connection) -> None:
        try:
            self.reply.send(conn)
        except OSError:
            with self.upstream._count_lock:
                self.upstream.disconnected += 1
            raise


# -- process figures ----------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


TCP_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "06": "TIME_WAIT", "0A": "LISTEN"}


def _tcp_table(pid: int) -> list[tuple[int, int, str, str]]:
    """(local port, remote port, state, inode) of every IPv4/IPv6 TCP socket in the
    process's network namespace."""
    rows = []
    for name in ("tcp", "tcp6"):
        path = f"/proc/{pid}/net/{name}"
        if not os.path.exists(path):
            continue
        with open(path) as table:
            next(table)
            for line in table:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                rows.append(
                    (
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                        state,
                        inode,
                    )
                )
    return rows


def sample(pid: int, upstream_port: int, router_port: int) -> dict[str, Any]:
    """RSS, open fds and the router's own TCP sockets by peer and state."""
    with open(f"/proc/{pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    inodes = _socket_inodes(pid)
    mine = [row for row in _tcp_table(pid) if row[3] in inodes]
    upstream = [row for row in mine if row[1] == upstream_port]
    clients = [row for row in mine if row[0] == router_port and row[2] != "0A"]
    return {
        "t": round(time.monotonic() - T0, 1),
        "rss_mb": round(rss_kb / 1024, 1),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        "upstream_established": sum(1 for row in upstream if row[2] == "01"),
        "upstream_close_wait": sum(1 for row in upstream if row[2] == "08"),
        "client_connections": len(clients),
    }


# -- load ---------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.unexpected: list[str] = []
        self.latencies: list[float] = []

    def add(self, outcome: str, detail: str = "") -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome == "unexpected" and len(self.unexpected) < 20:
            self.unexpected.append(detail)


async def one_request(
    client: httpx.AsyncClient, rng: random.Random, args: Any, tally: Tally
) -> None:
    roll = rng.random()
    disconnect = roll < args.disconnect  # a subset of the streams
    stream = roll < args.stream_share
    content = f"soak {rng.random()}"
    body = {**BODY, "stream": stream, "messages": [{"role": "user", "content": content}]}
    start = time.monotonic()
    try:
        async with client.stream("POST", "/v1/messages", json=body) as response:
            if disconnect:
                async for _ in response.aiter_bytes():
                    break  # close mid-stream: leaving the block drops the connection
                tally.add("client_disconnected_mid_stream")
                return
            data = await response.aread()
    except httpx.HTTPError as exc:
        tally.add("unexpected", f"{type(exc).__name__}: {exc}")
        return
    tally.latencies.append(time.monotonic() - start)
    text = data.decode(errors="replace")
    if response.status_code == 500 and "upstream returned 500: soak fault" in text:
        tally.add("upstream_fault_500")
    elif response.status_code != 200:
        tally.add("unexpected", f"{response.status_code}: {text[:200]}")
    elif stream and text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n'):
        tally.add("ok_stream")
    elif not stream and text.startswith("{") and json.loads(text).get("type") == "message":
        tally.add("ok_json")
    else:
        tally.add("unexpected", f"200 {'stream' if stream else 'json'}: {text[-200:]}")


async def load(router: RouterProcess, upstream: SoakUpstream, args: Any) -> dict[str, Any]:
    pid = router._process.pid  # type: ignore[union-attr]
    rng = random.Random(args.seed)
    tally = Tally()
    samples: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.requests):
        queue.put_nowait(n)
    deadline = time.monotonic() + args.time_limit
    done = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one_request(client, rng, args, tally)
            done += 1
            if done % (args.requests // 10 or 1) == 0:
                progress.append({"requests_done": done, **sample(pid, upstream.port, router.port)})

    async def sampler() -> None:
        while True:
            samples.append(sample(pid, upstream.port, router.port))
            await asyncio.sleep(0.5)

    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    timeout = httpx.Timeout(30.0)
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=router.url, limits=limits, timeout=timeout, trust_env=False
    ) as client:
        watcher = asyncio.ensure_future(sampler())
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        watcher.cancel()
    elapsed = time.monotonic() - started
    latencies = sorted(tally.latencies)
    return {
        "requests_sent": done,
        "completed": done == args.requests,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(done / elapsed, 1),
        "outcomes": dict(sorted(tally.outcomes.items())),
        "unexpected_examples": tally.unexpected,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
            if latencies
            else None,
        },
        "during_max": {
            key: max(s[key] for s in samples)
            for key in (
                "rss_mb",
                "open_fds",
                "upstream_established",
                "upstream_close_wait",
                "client_connections",
            )
        }
        if samples
        else {},
        "progress": progress,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--stream-share", type=float, default=0.5, help="share of streaming requests"
    )
    parser.add_argument("--disconnect", type=float, default=0.1, help="share closed mid-stream")
    parser.add_argument("--fault-share", type=float, default=0.02, help="share of upstream 500s")
    parser.add_argument("--stream-delay", type=float, default=0.005, help="seconds between chunks")
    parser.add_argument("--time-limit", type=float, default=600.0, help="stop sending after this")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds before the 'after' sample"
    )
    parser.add_argument(
        "--keepalive-settle",
        type=float,
        default=125.0,
        help="then wait this long for a last sample (aiohttp closes idle pooled connections "
        "60-120 s after last use: its 60 s keep-alive is checked every 60 s); 0 skips",
    )
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    upstream = SoakUpstream(args.fault_share, args.stream_delay).start()
    env = {"UPSTREAM_MAX_RETRIES": "0", "REQUEST_TIMEOUT": "60", "MAX_CONCURRENT_REQUESTS": "1000"}
    router = RouterProcess(upstream.url, env).start()
    try:
        pid = router._process.pid  # type: ignore[union-attr]
        before = sample(pid, upstream.port, router.port)
        result = asyncio.run(load(router, upstream, args))
        time.sleep(args.settle)
        after = sample(pid, upstream.port, router.port)
        after_keepalive = None
        if args.keepalive_settle > 0:
            time.sleep(args.keepalive_settle)
            after_keepalive = sample(pid, upstream.port, router.port)
        logs = router.logs()
    finally:
        router.stop()
        upstream.stop()
    summary = {
        "command": " ".join(["python", "scripts/soak.py", *sys.argv[1:]]),
        "settings": {k: v for k, v in vars(args).items()},
        "upstream_requests_received": upstream.received,
        "upstream_streams_closed_by_router": upstream.disconnected,
        **result,
        "before": before,
        "after": after,
        "after_keepalive_expiry": after_keepalive,
        "router_error_records": len(log_errors(logs)),
    }
    print(json.dumps(summary, indent=2))
    if summary["router_error_records"] or result["outcomes"].get("unexpected"):
        return 1
    return 0 if result["completed"] else 2


if __name__ == "__main__":
    sys.exit(main())
