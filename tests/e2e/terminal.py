"""Claude Code's interactive TUI in a pseudo-terminal, read through a terminal emulator (pyte),
for what only interactive mode does: the `/model` picker, `/model <name>` and its check.

The CLI is started in a fresh HOME whose `~/.claude.json` skips onboarding (which would
contact api.anthropic.com) and trusts the working directory; see the Claude Code notes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import pyte

from .clients import BASE_PATH, CLAUDE_BIN, CLIENT_KEY

COLUMNS, LINES = 110, 45
UP, DOWN, ENTER = "\x1b[A", "\x1b[B", "\r"
CURSOR = "\u276f"


class Terminal:
    """`claude` (no arguments: the TUI) on a pty; `screen()` is what a user would see."""

    def __init__(self, base_url: str, env: Mapping[str, str] | None = None) -> None:
        self._home = tempfile.TemporaryDirectory(prefix="e2e-tui-home-")
        self._cwd = tempfile.TemporaryDirectory(prefix="e2e-tui-cwd-")
        self.home = Path(self._home.name)
        cwd = os.path.realpath(self._cwd.name)
        seed = {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            "numStartups": 1,
            "projects": {cwd: {"hasTrustDialogAccepted": True, "allowedTools": []}},
        }
        (self.home / ".claude.json").write_text(json.dumps(seed))
        self.env = {
            "PATH": BASE_PATH,
            "HOME": str(self.home),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_AUTH_TOKEN": CLIENT_KEY,  # a bearer token needs no approval prompt
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **(env or {}),
        }
        self._screen = pyte.Screen(COLUMNS, LINES)
        self._stream = pyte.ByteStream(self._screen)
        self._pid, self._fd = pty.fork()
        if self._pid == 0:  # the child: become the CLI
            os.chdir(cwd)
            os.execve(str(CLAUDE_BIN), [str(CLAUDE_BIN)], self.env)
        os.set_blocking(self._fd, False)
        self._set_size()

    def _set_size(self) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self._fd, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))

    def pump(self, seconds: float) -> None:
        """Read what the CLI draws for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._fd], [], [], min(left, 0.1))
            if ready:
                try:
                    data = os.read(self._fd, 65536)
                except OSError:  # the CLI exited
                    return
                self._stream.feed(data)

    def screen(self) -> str:
        return "\n".join(line.rstrip() for line in self._screen.display)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Pump until `text` is on the screen; AssertionError with the screen otherwise."""
        self.wait_for_any(text, timeout=timeout)
        return self.screen()

    def wait_for_any(self, *texts: str, timeout: float = 20.0) -> str:
        """Pump until one of `texts` is on the screen; returns it."""
        deadline = time.monotonic() + timeout
        while not (found := [text for text in texts if text in self.screen()]):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{texts} not on the screen after {timeout}s:\n{self.screen()}"
                )
            self.pump(0.2)
        return found[0]

    def type(self, text: str, settle: float = 0.5) -> None:
        os.write(self._fd, text.encode())
        self.pump(settle)

    def submit(self, text: str) -> None:
        """Type a line, then Enter as its own keystroke (a paste with `\\r` is not a submit)."""
        self.type(text)
        self.type(ENTER)

    def selected_line(self) -> str:
        """The picker line under the cursor (U+276F, the prompt and selection mark)."""
        return next((line for line in self.screen().splitlines() if CURSOR in line), "")

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._home.cleanup()
        self._cwd.cleanup()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
