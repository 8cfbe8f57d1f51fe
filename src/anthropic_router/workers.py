"""`--workers N` with the kernel balancing connections (SO_REUSEPORT).

uvicorn's supervisor binds one socket and every worker accepts from it: with keep-alive
clients, the worker that wakes first takes a whole burst of connections (one took all of
them in the benchmark) while the others idle. With SO_REUSEPORT each worker listens on a
socket of its own on the same address and the kernel spreads new connections over them
by a hash of the connection.

The supervisor (restarts, signals, health checks) stays uvicorn's: it hands each worker the
socket it was given, pickled. The socket here pickles as "bind a fresh SO_REUSEPORT socket
to this address", so each worker, restarted ones included, unpickles a socket of its own.
The parent's socket is bound (it holds the port and reports it taken at once) but never
listens, so the kernel gives it no connections.
"""

from __future__ import annotations

import inspect
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess


def available() -> bool:
    # macOS and the BSDs accept SO_REUSEPORT but do not balance: Linux only.
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class _ReusePortSocket(socket.socket):
    def __reduce__(self) -> tuple[Any, tuple[int, Any]]:
        return (bind, (int(self.family), self.getsockname()[:2]))


def bind(family: int, address: tuple[str, int]) -> socket.socket:
    """A socket bound to `address` with SO_REUSEPORT, not yet listening (uvicorn listens)."""
    sock = _ReusePortSocket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def run(app: str, **options: Any) -> None:
    """`uvicorn.run(app, workers=N, ...)`, each worker on a socket of its own."""
    config = uvicorn.Config(app, **options)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        sock = bind(family, (config.host, config.port))
    except OSError as exc:
        uvicorn.config.logger.error(exc)
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
    uvicorn.config.logger.info(
        "Uvicorn running on http://%s:%d with %d workers (SO_REUSEPORT)",
        config.host,
        sock.getsockname()[1],
        config.workers,
    )
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.36
        server = uvicorn.Server(config)
        Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()
