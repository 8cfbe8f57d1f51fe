"""metrics_files.py: with PROMETHEUS_MULTIPROC_DIR set, workers count in process and flush to
prometheus-client's files; `/metrics` (MultiProcessCollector over the files) shows what the
one-process registry shows. Each case runs in a fresh interpreter: the mode is chosen at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from support.router import SRC_DIR

RECORDS = textwrap.dedent(
    """
    from anthropic_router import metrics

    metrics.set_known_models({"claude-haiku-4-5", "up/model"})
    ms = {"read": 0.1, "convert": 0.2, "upstream_headers": 3, "first_token": 4, "total": 70}
    done = {
        "path": "/v1/messages", "status": 200, "client_model": "claude-haiku-4-5",
        "upstream_model": "up/model", "backend": "openrouter", "stream": True, "ms": ms,
        "usage": {"input_tokens": 10, "output_tokens": 3}, "cost_usd": 0.25, "retries": 1,
    }
    failed = {"path": "/v1/x", "status": 404, "error_type": "not_found_error", "ms": {"total": 2}}
    def exchanges(n):
        for _ in range(n):
            metrics.IN_FLIGHT.inc()
            metrics.observe(done)
            metrics.IN_FLIGHT.dec()
            metrics.observe(failed)
    metrics.set_info("1.0", "OPENROUTER", {"multi_modal": True})
    metrics.set_batch_gauges({"ended": 2}, 5)
    metrics.CACHE_BYTES.set(100)
    """
)


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC_DIR)}


def _python(code: str, directory: Path | None) -> str:
    env = _env()
    if directory is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    done = subprocess.run(
        [sys.executable, "-c", RECORDS + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _collect(directory: Path) -> str:
    """What `/metrics` serves from the files alone (no process of the router involved)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    return generate_latest(registry).decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        # one process only: `_created` and the process_/python_ collectors (as before)
        if sample.name.startswith("anthropic_router_") and not sample.name.endswith("_created")
    }


def _requests(samples: dict, status: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "anthropic_router_requests_total" and ("status", status) in labels
    )


def test_files_show_what_one_process_shows(tmp_path):
    code = "exchanges(7)\nprint(metrics.exposition()[0].decode())"
    one_process = _samples(_python(code, None))
    from_files = _samples(_python(code, tmp_path))
    assert _requests(one_process, "200") == 7 and _requests(one_process, "404") == 7
    assert from_files == one_process  # every series, label and value, histograms included
    assert _samples(_collect(tmp_path)) == one_process  # and the files hold all of it


def test_updates_reach_the_files_on_flush_not_before(tmp_path):
    code = """
    import os
    from anthropic_router import metrics_files
    metrics_files.flush()
    exchanges(3)
    print(os.getpid(), flush=True)
    input()  # the test reads the files here
    metrics_files.flush()
    print("flushed", flush=True)
    input()
    """
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDS + textwrap.dedent(code)],
        env={**_env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdout.readline()
        assert _requests(_samples(_collect(tmp_path)), "200") == 0  # counted in process only
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "flushed\n"
        assert _requests(_samples(_collect(tmp_path)), "200") == 3
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_clean_exit_flushes(tmp_path):
    _python("exchanges(4)", tmp_path)  # no explicit flush: atexit writes the counts
    samples = _samples(_collect(tmp_path))
    assert _requests(samples, "200") == 4 and _requests(samples, "404") == 4
    assert samples[("anthropic_router_in_flight_requests", ())] == 0


def test_a_forked_child_counts_on_files_of_its_own(tmp_path):
    code = """
    import os
    exchanges(5)
    child = os.fork()
    if child == 0:
        exchanges(1)
        metrics.flush()
        os._exit(0)
    os.waitpid(child, 0)
    metrics.flush()
    print(json.dumps(sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))))
    """
    files = json.loads(_python("import json\n" + textwrap.dedent(code), tmp_path))
    assert len({name.rsplit("_", 1)[1] for name in files}) == 2  # two pids
    assert _requests(_samples(_collect(tmp_path)), "200") == 6  # 5 + 1, not 5 + 6
