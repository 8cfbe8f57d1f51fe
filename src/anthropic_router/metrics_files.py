"""Per-worker metric files for `--workers N`, written by a flush instead of on every update.

prometheus-client's multiprocess mode writes every increment through to an mmap'd file
(a lock, a pid check and a struct pack per value: it doubled the cost of an exchange's
metric updates, 18-22 -> 36-59 µs in bench/metrics_cost.py). Here each worker counts in
plain in-process floats, as in one-process mode, and copies its values into the same
files, in prometheus-client's own format, from `flush()`: every FLUSH_INTERVAL seconds (a
thread), before it serves a scrape, and at shutdown (the app's lifespan end; atexit for
other hosts). `/metrics` still sums the files with prometheus-client's
MultiProcessCollector, so series, labels and the gauges' multiprocess modes are unchanged.
A scrape sees the other workers as of their last flush (at most FLUSH_INTERVAL old); a
worker killed with SIGKILL loses what it counted since its last flush.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

FLUSH_INTERVAL = 1.0

log = logging.getLogger(__name__)

_lock = threading.Lock()  # the files and the list of values
_values: list[FileValue] = []
_files: dict[str, MmapedDict] = {}
_directory = ""
_pid = 0
_failed = False


class FileValue(values.MutexValue):
    """prometheus-client's in-process value (its `inc`/`set`/`get`, no file I/O) that
    `flush()` copies to this process's file for its type."""

    _multiprocess = True

    def __init__(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        multiprocess_mode: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs)  # type: ignore[no-untyped-call]
        self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
        self._timestamp = 0.0
        with _lock:
            self._load()
            _values.append(self)

    def set(self, value: float, timestamp: float | None = None) -> None:
        with self._lock:
            self._value = value
            self._timestamp = timestamp or 0.0  # the "mostrecent" gauge modes compare these

    def _load(self) -> None:
        """Start from what this pid's file holds (a restarted worker may reuse a pid); the
        lock is held."""
        self._value, self._timestamp = _file(self._prefix).read_value(self._key)  # type: ignore[no-untyped-call]
        self._written = (self._value, self._timestamp)


def _file(prefix: str) -> MmapedDict:
    found = _files.get(prefix)
    if found is None:
        path = os.path.join(_directory, f"{prefix}_{_pid}.db")
        found = _files[prefix] = MmapedDict(path)  # type: ignore[no-untyped-call]
    return found


def flush() -> None:
    """Copy the values changed since the last flush into this process's files."""
    with _lock:
        for value in _values:
            current = (value._value, value._timestamp)
            if current != value._written:
                _file(value._prefix).write_value(value._key, *current)  # type: ignore[no-untyped-call]
                value._written = current


def _flush_every(interval: float) -> None:
    global _failed
    while True:
        time.sleep(interval)
        try:
            flush()
        except Exception:  # a full disk must not end the counting; said once
            if not _failed:
                _failed = True
                log.exception("metrics: cannot write the metric files in %s", _directory)


def _after_fork_in_child() -> None:
    """A forked child has its parent's counts and mmaps: start again on files of its own
    (as prometheus-client does when its pid changes)."""
    global _lock, _pid
    _lock = threading.Lock()  # the parent's flush thread may have held it
    _pid = os.getpid()
    _files.clear()  # the parent's mmaps stay the parent's; these objects are just dropped
    for value in _values:
        value._lock = threading.Lock()
        value._load()
    _start_thread()


def _start_thread() -> None:
    thread = threading.Thread(
        target=_flush_every, args=(FLUSH_INTERVAL,), name="metrics-flush", daemon=True
    )
    thread.start()


def install(directory: str) -> None:
    """Metrics created from now on count in process and are flushed to `directory`."""
    global _directory, _pid
    _directory, _pid = directory, os.getpid()
    # The class prometheus-client builds every metric value from (how its own
    # MultiProcessValue plugs in); not a public API: tests/test_metrics_files.py checks the
    # files against MultiProcessCollector.
    values.ValueClass = FileValue
    _start_thread()
    atexit.register(flush)  # a clean stop (SIGTERM, SIGINT) loses nothing
    os.register_at_fork(after_in_child=_after_fork_in_child)
