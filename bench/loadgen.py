"""Closed-loop HTTP/1.1 load client for the benchmark.

Raw asyncio protocol on uvloop with precomputed request bytes, so that it costs a few
microseconds per request and is not the bottleneck. It runs as its own process (pinned by
run.py); it reads the server's CPU time from /proc at the edges of the measurement window.

Input: one JSON spec (``--spec '{...}'`` or ``--spec-file``); output: one JSON object on stdout.

Spec keys
  host, port, path, headers{}, body (str)      the request
  stream (bool), ttft_marker (str)             streaming: TTFT = first occurrence of marker
  concurrency, duration_s, warmup_s,           closed loop; responses completed in the window
                                               [warmup_s, duration_s] are measured
  max_requests                                 the window closes early after this many
  min_requests, max_duration_s                 slow servers: the window stays open until
                                               min_requests completed, up to max_duration_s
  stagger_s                                    random start offset of each connection
  server_pid, load_pids[]                      for CPU accounting (process trees)
  vary (str)                                   a placeholder found once in the request:
                                               each request replaces it with a distinct
                                               value of the same length (distinct bodies,
                                               e.g. response-cache misses)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
perf = time.perf_counter


# --------------------------------------------------------------------------- /proc helpers
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2 :].split()
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rfind(b")") + 2 :].split()


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime+stime of pid (and its live descendants, plus reaped children of the root)."""
    pids = process_tree(pid) if tree else [pid]
    total = 0
    for i, p in enumerate(pids):
        f = _stat_fields(p)
        if f is None:
            continue
        # fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total / CLK_TCK


def core_times() -> dict[str, tuple[int, int]]:
    """Per-core (busy, total) jiffies from /proc/stat (busy = all but idle and iowait)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *vals = line.split()
            v = [int(x) for x in vals[:8]]
            total = sum(v)
            out[name[3:]] = (total - v[3] - v[4], total)
    return out


def rss_mb(pid: int, tree: bool = True) -> dict[str, float]:
    pids = process_tree(pid) if tree else [pid]
    rss = hwm = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            continue
    return {"rss_mb": round(rss / 1024, 1), "hwm_mb": round(hwm / 1024, 1), "nproc": len(pids)}


# --------------------------------------------------------------------------- client
HEAD, BODY_CL, BODY_CHUNKED, BODY_CLOSE = range(4)


class Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, marker: bytes | None, capture: bool) -> None:
        self.t: asyncio.Transport | None = None
        self.marker = marker
        self.mlen = len(marker) if marker else 0
        self.capture = capture
        self.captured = bytearray()
        self.closed = asyncio.get_running_loop().create_future()
        self.fut: asyncio.Future | None = None
        self.reset()

    def reset(self) -> None:
        self.state = HEAD
        self.buf = b""
        self.status = 0
        self.left = 0
        self.pending = b""
        self.final = False
        self.t_first: float | None = None
        self.tail = b""
        self.keepalive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.fut is not None and not self.fut.done():
            if self.state == BODY_CLOSE:
                self._done()
            else:
                self.fut.set_exception(ConnectionError(f"connection lost ({exc})"))
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, data: bytes) -> asyncio.Future:
        self.reset()
        self.fut = asyncio.get_running_loop().create_future()
        self.t0 = perf()
        self.t.write(data)  # type: ignore[union-attr]
        return self.fut

    def _done(self) -> None:
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_result((self.status, self.t_first, perf()))

    def _scan(self, data: bytes) -> None:
        if self.t_first is None and self.marker is not None:
            hay = self.tail + data
            if self.marker in hay:
                self.t_first = perf()
            else:
                self.tail = hay[-self.mlen :]

    def data_received(self, data: bytes) -> None:
        if self.capture:
            self.captured += data
        if self.state == HEAD:
            data = self.buf + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end].lower()
            self.status = int(head[9:12])
            data = data[end + 4 :]
            self.keepalive = b"\r\nconnection: close" not in head
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                e = head.find(b"\r\n", i + 2)
                self.left = int(head[i + 17 : e if e >= 0 else len(head)])
                self.state = BODY_CL
            elif b"\r\ntransfer-encoding: chunked" in head:
                self.state = BODY_CHUNKED
            else:
                self.state = BODY_CLOSE
                self.keepalive = False
            if self.state == BODY_CL and self.left == 0:
                self._done()
                return
        if not data:
            return
        if self.state == BODY_CL:
            self._scan(data)
            self.left -= len(data)
            if self.left <= 0:
                self._done()
        elif self.state == BODY_CHUNKED:
            self._scan(data)
            self._chunked(data)
        else:  # BODY_CLOSE
            self._scan(data)

    def _chunked(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
            self.pending = b""
        pos, n = 0, len(data)
        while pos < n:
            if self.final:
                # after the 0-size chunk: skip optional trailers up to the empty line
                rest = data[pos:]
                if rest.startswith(b"\r\n") or b"\r\n\r\n" in rest:
                    self._done()
                else:
                    self.pending = rest
                return
            if self.left > 0:
                take = min(self.left, n - pos)
                pos += take
                self.left -= take
                continue
            e = data.find(b"\r\n", pos)
            if e < 0:
                self.pending = data[pos:]
                return
            size = int(data[pos:e].split(b";", 1)[0], 16)
            pos = e + 2
            if size == 0:
                self.final = True
            else:
                self.left = size + 2  # data + CRLF


def _pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(q / 100 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


def dechunk(raw: bytes) -> tuple[int, bytes]:
    end = raw.find(b"\r\n\r\n")
    head, body = raw[:end].lower(), raw[end + 4 :]
    status = int(head[9:12])
    if b"transfer-encoding: chunked" not in head:
        return status, body
    out, pos = [], 0
    while True:
        e = body.find(b"\r\n", pos)
        if e < 0:
            break
        size = int(body[pos:e].split(b";")[0], 16)
        if size == 0:
            break
        out.append(body[e + 2 : e + 2 + size])
        pos = e + 2 + size + 2
    return status, b"".join(out)


def _request_source(req: bytes, vary: str | None):
    """A function giving the next request's bytes: `req` itself, or with the placeholder
    `vary` replaced by a counter of the same width (Content-Length stays right) after a
    random per-run prefix, so that runs against a shared store never repeat a body."""
    if not vary:
        return lambda: req
    head, sep, tail = req.partition(vary.encode())
    if not sep or len(vary) < 12:
        raise SystemExit("vary: the placeholder (12+ characters) must occur in the request")
    width = len(vary) - 8
    prefix = b"%08x" % random.getrandbits(32)
    counter = iter(range(16**width))
    return lambda: b"%s%s%0*x%s" % (head, prefix, width, next(counter), tail)


async def run(spec: dict) -> dict:  # noqa: C901  (one run's state, shared by closures)
    loop = asyncio.get_running_loop()
    host, port = spec.get("host", "127.0.0.1"), int(spec["port"])
    body = spec["body"].encode()
    hdrs = {
        "Host": f"{host}:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **spec.get("headers", {}),
    }
    req = (
        f"POST {spec['path']} HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        + "\r\n"
    ).encode() + body
    marker = spec.get("ttft_marker")
    marker_b = marker.encode() if marker else None
    next_req = _request_source(req, spec.get("vary"))
    conc = int(spec["concurrency"])
    duration = float(spec.get("duration_s", 4.0))
    warmup = float(spec.get("warmup_s", 0.5))
    max_req = int(spec.get("max_requests", 10**9))
    stagger = float(spec.get("stagger_s", 0.0))
    server_pid = spec.get("server_pid")
    load_pids = list(spec.get("load_pids", []))
    timeout = float(spec.get("request_timeout_s", 30.0))

    async def connect(capture: bool = False) -> Conn:
        _, proto = await loop.create_connection(lambda: Conn(marker_b, capture), host, port)
        return proto  # type: ignore[return-value]

    # connect everything first so that connection set-up is outside the window
    conns = []
    sem = asyncio.Semaphore(200)

    async def _c(i: int) -> Conn:
        async with sem:
            return await connect(capture=(i == 0))

    conns = await asyncio.gather(*[_c(i) for i in range(conc)])

    lat: list[float] = []
    ttft: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    n_win = 0
    total_done = 0
    t_start = perf()
    win_start = t_start + warmup
    deadline = t_start + duration
    hard_deadline = t_start + max(duration, float(spec.get("max_duration_s", duration)))
    min_req = int(spec.get("min_requests", 0))
    ended = False
    snap: dict[str, float] = {}
    stop = asyncio.Event()
    sample: dict = {}

    def snapshot(tag: str) -> None:
        snap[f"{tag}_t"] = perf()
        snap[f"{tag}_self"] = time.process_time()
        if server_pid:
            snap[f"{tag}_server"] = cpu_seconds(server_pid)
        snap[f"{tag}_load"] = sum(cpu_seconds(p) for p in load_pids)
        snap[f"{tag}_cores"] = core_times()  # type: ignore[assignment]

    def end_window() -> None:
        nonlocal ended
        if not ended:
            ended = True
            snapshot("b")
            stop.set()

    async def window_timer() -> None:
        await asyncio.sleep(max(0.0, win_start - perf()))
        snapshot("a")
        await asyncio.sleep(max(0.0, deadline - perf()))
        # slow servers: extend the window (up to max_duration_s) until min_requests completed
        while n_win < min_req and perf() < hard_deadline and not ended:
            await asyncio.sleep(0.05)
        end_window()

    async def worker(i: int) -> None:  # noqa: C901  (the hot loop, kept in one piece)
        nonlocal n_win, total_done
        conn = conns[i]
        if stagger:
            await asyncio.sleep(random.uniform(0, stagger))
        while not stop.is_set():
            t0 = perf()
            try:
                if conn.t is None or conn.t.is_closing():
                    conn = await connect()
                status, t_first, t1 = await asyncio.wait_for(conn.request(next_req()), timeout)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                statuses[-1] = statuses.get(-1, 0) + 1
                if conn.t is not None:
                    conn.t.close()
                if len(errors) > 1000:
                    end_window()
                await asyncio.sleep(0.01)
                continue
            total_done += 1
            statuses[status] = statuses.get(status, 0) + 1
            if conn.capture and not sample:
                raw = bytes(conn.captured)
                st, b = dechunk(raw)
                head = raw[: raw.find(b"\r\n\r\n")].decode("latin-1")
                sample.update(status=st, body=b.decode("utf-8", "replace"), head=head)
                conn.capture = False
                conn.captured = bytearray()
            if not conn.keepalive:
                conn.t.close()  # type: ignore[union-attr]
            if t1 >= win_start and not ended and "a_t" in snap:
                if status == 200:
                    lat.append(t1 - t0)
                    if t_first is not None:
                        ttft.append(t_first - t0)
                    n_win += 1
                    if n_win >= max_req:
                        end_window()
                else:
                    errors.append(f"HTTP {status}")

    snapshot("z")  # whole-run CPU accounting starts before the first request
    timer = asyncio.create_task(window_timer())
    workers = [asyncio.create_task(worker(i)) for i in range(conc)]
    await stop.wait()
    # drain: requests in flight complete (bounded), so that the server CPU of the whole run
    # divided by every completed request is exact even when few requests complete
    drain_t0 = perf()
    _, pending = await asyncio.wait(workers, timeout=float(spec.get("drain_s", timeout)))
    drain_s = perf() - drain_t0
    for w in pending:
        w.cancel()
    timer.cancel()
    await asyncio.gather(*workers, timer, return_exceptions=True)
    snapshot("d")
    for c in conns:
        if c.t is not None:
            c.t.close()

    if "a_t" not in snap:  # max_requests reached before warm-up ended: degenerate
        snap.update({k.replace("b_", "a_"): v for k, v in snap.items()})
    window = snap["b_t"] - snap["a_t"]
    lat.sort()
    ttft.sort()
    n = n_win
    out = {
        "concurrency": conc,
        "stream": bool(spec.get("stream")),
        "window_s": round(window, 3),
        "requests": n,
        "total_completed": total_done,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": len(errors),
        "error_samples": errors[:5],
        "rps": round(n / window, 1) if window > 0 else None,
        "rps_basis": "window",
        "lat_ms": {
            "p50": _ms(_pct(lat, 50)),
            "p90": _ms(_pct(lat, 90)),
            "p99": _ms(_pct(lat, 99)),
            "max": _ms(lat[-1] if lat else None),
            "mean": _ms(sum(lat) / len(lat) if lat else None),
        },
        "sample": {
            "status": sample.get("status"),
            "head": sample.get("head", "")[:4000],
            "body": sample.get("body", "")[:100000],
        },
    }
    if marker_b:
        out["ttft_ms"] = {
            "p50": _ms(_pct(ttft, 50)),
            "p90": _ms(_pct(ttft, 90)),
            "p99": _ms(_pct(ttft, 99)),
            "max": _ms(ttft[-1] if ttft else None),
            "n": len(ttft),
        }
    # slow servers (few completions per connection in the window): the window figure is
    # biased by the synchronized start; use every completion over the whole run instead
    run_s = snap["d_t"] - snap["z_t"]
    out["rps_run"] = round(total_done / run_s, 2) if run_s > 0 else None
    if n < 3 * conc and not stagger and out["rps_run"] is not None:
        out["rps"], out["rps_basis"] = out["rps_run"], "run"
    out["drain_s"] = round(drain_s, 3)
    out["abandoned"] = len(pending)
    if server_pid and window > 0:
        cpu = snap["b_server"] - snap["a_server"]
        out["server_cpu_s"] = round(cpu, 3)
        out["server_core_util"] = round(cpu / window, 3)
        out["server_cpu_ms_per_req_window"] = round(cpu * 1000 / n, 4) if n else None
        # primary figure: server CPU from before the first request to after the drain,
        # divided by every request completed in that time (warm-up included)
        run_cpu = snap["d_server"] - snap["z_server"]
        out["server_cpu_s_run"] = round(run_cpu, 3)
        out["server_cpu_ms_per_req"] = round(run_cpu * 1000 / total_done, 4) if total_done else None
    if "a_cores" in snap and "b_cores" in snap:
        a_c, b_c = snap["a_cores"], snap["b_cores"]  # type: ignore[index]
        out["core_busy"] = {
            c: round((b_c[c][0] - a_c[c][0]) / max(1, b_c[c][1] - a_c[c][1]), 3)
            for c in b_c
            if c in a_c
        }
    if window > 0:
        load_cpu = (snap["b_self"] - snap["a_self"]) + (snap["b_load"] - snap["a_load"])
        out["load_side_core_util"] = round(load_cpu / window, 3)
        out["loadgen_core_util"] = round((snap["b_self"] - snap["a_self"]) / window, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="closed-loop load client (see module doc)")
    ap.add_argument("--spec")
    ap.add_argument("--spec-file")
    a = ap.parse_args()
    if a.spec:
        spec = json.loads(a.spec)
    else:
        with open(a.spec_file) as f:
            spec = json.load(f)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as r:
        res = r.run(run(spec))
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
