"""`--workers 2`: the kernel spreads a burst of keep-alive connections over both workers
(SO_REUSEPORT, workers.py), counted by which worker's pid logged each connection's exchange;
`/metrics` counts the requests of both workers (metrics_files.py)."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Iterable

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from support.router import RouterProcess

pytestmark = pytest.mark.integration

CONNECTIONS = 400  # 40-60 % each is 4 standard deviations of a fair split: not a coin flip


def _request(sock: socket.socket) -> str:
    """One keep-alive request (a logged 404 under /v1/, no upstream involved); its request-id."""
    sock.sendall(b"GET /v1/worker-probe HTTP/1.1\r\nHost: router\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        assert data, "the router closed a keep-alive connection"
        head += data
    headers, _, rest = head.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in headers.split(b"\r\n")[1:] if b": " in line)
    length = int(fields[b"content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return fields[b"request-id"].decode()


def _pids(router: RouterProcess) -> dict[str, int]:
    found = {}
    for line in router.logs().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "exchange" and "request_id" in record:
                found[record["request_id"]] = record["pid"]
    return found


def _connect(router: RouterProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", router.port), timeout=10)


def _wait_for_both_workers(router: RouterProcess) -> None:
    """/health answered from the first worker up; wait until the second one serves too."""
    ids = []
    for _ in range(400):
        with _connect(router) as sock:
            ids.append(_request(sock))
        if len({_pids(router).get(i) for i in ids} - {None}) == 2:
            return
        time.sleep(0.05)
    raise AssertionError("the second worker never served a connection")


def _wait_logged(router: RouterProcess, ids: list[str]) -> dict[str, int]:
    for _ in range(200):
        pids = _pids(router)
        if all(i in pids for i in ids):
            return pids
        time.sleep(0.05)
    raise AssertionError("not every exchange was logged")


def test_two_workers_share_a_burst_of_keep_alive_connections(router_factory):
    router = router_factory(env={"WORKERS": "2"})
    _wait_for_both_workers(router)
    sockets = [_connect(router) for _ in range(CONNECTIONS)]  # the burst: all open at once
    try:
        first = [_request(sock) for sock in sockets]
        again = [_request(sock) for sock in sockets]  # kept alive: the same worker again
    finally:
        for sock in sockets:
            sock.close()
    pids = _wait_logged(router, first + again)
    by_connection = [pids[i] for i in first]
    assert [pids[i] for i in again] == by_connection
    shares = Counter(by_connection)
    assert len(shares) == 2, shares
    for pid, count in shares.items():
        assert 0.4 * CONNECTIONS <= count <= 0.6 * CONNECTIONS, (pid, shares)


PROBES = 120  # each on a new connection, so the kernel spreads them over both workers
PROBE_COUNT = "anthropic_router_requests_total"


def _probes_counted(samples: Iterable[Sample]) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == PROBE_COUNT and s.labels["route"] == "other" and s.labels["status"] == "404"
    )


def _scrape(router: RouterProcess) -> list[Sample]:
    text = httpx.get(f"{router.url}/metrics", timeout=10).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _send_probes(router: RouterProcess) -> list[str]:
    ids = []
    for _ in range(PROBES):
        with _connect(router) as sock:
            ids.append(_request(sock))
    return ids


def test_metrics_count_every_workers_requests(router_factory):
    """Each worker counts in process and flushes to its files about every second: a scrape
    of either worker converges on every request either one served."""
    router = router_factory(env={"WORKERS": "2"})
    _wait_for_both_workers(router)
    ids = _send_probes(router)
    pids = _wait_logged(router, ids)
    assert len(Counter(pids[i] for i in ids)) == 2  # both workers served some
    sent = len(_pids(router))  # the probes above and the ones that found both workers
    deadline = time.monotonic() + 15  # the flush interval is 1 s: a bound, not a measurement
    while True:
        samples = _scrape(router)
        counted = _probes_counted(samples)
        if counted == sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counted == sent
    latency = "anthropic_router_request_duration_seconds_count"
    assert (
        sum(s.value for s in samples if s.name == latency and s.labels["route"] == "other") == sent
    )


def test_metrics_flushed_when_the_workers_stop(router_factory, tmp_path):
    """A clean stop (SIGTERM) writes each worker's last counts to its files: read them after
    the router is gone (as the first scrape after a restart on the same directory would)."""
    router = router_factory(env={"WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    _wait_for_both_workers(router)
    _wait_logged(router, _send_probes(router))
    assert router.stop() == 0  # at once: the last probes are not flushed yet
    sent = len(_pids(router))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(tmp_path))
    assert _probes_counted(s for family in registry.collect() for s in family.samples) == sent
