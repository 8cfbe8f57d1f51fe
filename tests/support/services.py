"""Real PostgreSQL and Redis servers for tests, from Debian's packages (installed by
scripts/setup-services.sh), each in a temporary directory on a free loopback port.

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user
that Debian's package creates. One cluster per test session; `new_database()` gives each test
an empty database of its own in a few milliseconds.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg

from support.router import free_port

SETUP_HINT = "run `bash scripts/setup-services.sh` (installs postgresql and redis-server)"
STARTUP_TIMEOUT = 30.0


class ServiceError(RuntimeError):
    """A service could not be found or started; the message says why and what to run."""


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/N/bin (the real binaries: /usr/local/bin may hold
    wrappers), else the directory of `postgres` on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServiceError(f"PostgreSQL is not installed: {SETUP_HINT}")


def _service_user() -> str | None:
    """The user the cluster runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceError(
            f"running as root and there is no `postgres` user: {SETUP_HINT}"
        ) from exc
    return "postgres"


class PostgresServer:
    """`initdb` + `postgres` listening on 127.0.0.1:<free port>, trust auth, no fsync."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin_dir = postgres_bin_dir()
        self.user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="anthropic-router-pg-", dir=self._parent()))
        self._process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def _parent(self) -> str | None:
        """The temporary directory, unless the `postgres` user could not enter it."""
        parent = tempfile.gettempdir()
        if self.user is not None and not os.stat(parent).st_mode & 0o001:
            return "/tmp"
        return parent

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        if self.user is not None:
            shutil.chown(self.root, self.user)
        data = self.root / "data"
        self._run(
            [str(self.bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        )  # fmt: skip
        log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 (the server keeps it)
        with log:
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", str(self.root),
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=300"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                user=self.user, cwd=self.root,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, user=self.user, cwd=self.root)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise ServiceError(f"{command[0]} failed ({result.returncode}):\n{output}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise ServiceError(f"postgres exited:\n{self.log()}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    message = f"postgres not ready in {STARTUP_TIMEOUT}s:\n{self.log()}"
                    raise ServiceError(message) from exc
                time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def new_schema(self, database_url: str) -> str:
        """An empty schema in the database at `database_url`, and a URL whose connections
        use it (`search_path`): as separate as a new database for the store's tables, and
        ~20 times faster to make, so every test can have its own."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')  # type: ignore[arg-type]
        return f"{database_url}?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        database_url, _, options = url.partition("?")
        name = options.rsplit("%3D", 1)[1]
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')  # type: ignore[arg-type]

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, stop
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise ServiceError(f"redis-server is not installed: {SETUP_HINT}")
    return found


class RedisServer:
    """`redis-server` on 127.0.0.1:<free port>, nothing persisted. `stop()` then `start()`
    brings it back on the same port, empty: an outage and its recovery. `args` are extra
    command-line options (`--requirepass`, `--unixsocket`, ...)."""

    def __init__(self, args: tuple[str, ...] = ()) -> None:
        self.args = list(args)
        self.port = free_port()
        self.binary = redis_binary()
        self.root = Path(tempfile.mkdtemp(prefix="anthropic-router-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 (the server keeps it)
        with log:
            self._process = subprocess.Popen(
                [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.ping():
            if not self.running:
                raise ServiceError(f"redis-server exited:\n{self.log()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"redis-server not ready in {STARTUP_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                # With --requirepass an unauthenticated PING is refused: still up.
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def log(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
