"""The real Node clients of the end-to-end tests: the Claude Code CLI run headless, and Node for
the TypeScript SDK script. Both come from `.cache/e2e` (scripts/setup-e2e.sh installs them at
the versions pinned in tests/e2e/package.json)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]
CACHE_DIR = REPO_ROOT / ".cache" / "e2e"
NODE_MODULES = CACHE_DIR / "node_modules"
CLAUDE_BIN = NODE_MODULES / ".bin" / "claude"
SETUP_HINT = "run `bash scripts/setup-e2e.sh` (scripts/test.sh does it) to install it"

# The CLI sees only these variables, plus what a test adds (`env -i` style).
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
CLIENT_KEY = "sk-e2e-client-key"


def pinned_versions() -> dict[str, str]:
    manifest = json.loads((E2E_DIR / "package.json").read_text())
    return dict(manifest["dependencies"])


def installed_version(package: str) -> str | None:
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text())["version"])


def claude_version() -> str:
    """`claude --version`, e.g. "2.1.332 (Claude Code)"; raises when the CLI does not run."""
    if not CLAUDE_BIN.exists():
        raise FileNotFoundError(f"{CLAUDE_BIN} is missing: {SETUP_HINT}")
    done = subprocess.run(
        [str(CLAUDE_BIN), "--version"],
        env={"PATH": BASE_PATH, "HOME": tempfile.gettempdir()},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class ClaudeRun:
    """One finished `claude -p ... --output-format stream-json --verbose`."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"claude {' '.join(self.args)}\nexit {self.returncode} after {self.elapsed:.1f}s\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("type") == type_]

    @property
    def init(self) -> dict[str, Any]:
        inits = [e for e in self.of_type("system") if e.get("subtype") == "init"]
        assert len(inits) == 1, self.describe()
        return inits[0]

    @property
    def result(self) -> dict[str, Any]:
        results = self.of_type("result")
        assert len(results) == 1, f"expected one result event\n{self.describe()}"
        return results[0]

    def assistant_blocks(self, block_type: str | None = None) -> list[dict[str, Any]]:
        """Content blocks of the `assistant` events (one event per block), in order."""
        blocks = [b for e in self.of_type("assistant") for b in e["message"]["content"]]
        return [b for b in blocks if block_type is None or b.get("type") == block_type]

    def tool_results(self) -> list[dict[str, Any]]:
        """The `tool_result` blocks Claude Code sent back, in order."""
        return [
            block
            for event in self.of_type("user")
            for block in event["message"]["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    def assert_success(self, text: str | None = None) -> dict[str, Any]:
        """Exit 0 and a successful result (whose text is `text`, when given)."""
        assert self.returncode == 0, self.describe()
        result = self.result
        assert result["subtype"] == "success" and result["is_error"] is False, self.describe()
        if text is not None:
            assert result["result"] == text, self.describe()
        return result


def parse_ndjson(stdout: str) -> list[dict[str, Any]]:
    events = []
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as error:
            raise AssertionError(f"stdout line {number} is not JSON: {line[:500]!r}") from error
        assert isinstance(event, dict), line[:500]
        events.append(event)
    return events


def run_claude(
    base_url: str,
    prompt: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    timeout: float = 60.0,
) -> ClaudeRun:
    """Run the CLI headless in a fresh HOME and cwd with a clean environment.

    Defaults: `ANTHROPIC_API_KEY=CLIENT_KEY`, no CLI retries (`CLAUDE_CODE_MAX_RETRIES=0`, so
    any unexpected error fails at once), and the two flags every router deployment and test
    should set. `env` overrides them; a None value removes a variable.
    """
    with (
        tempfile.TemporaryDirectory(prefix="e2e-home-") as home,
        tempfile.TemporaryDirectory(prefix="e2e-cwd-") as cwd,
    ):
        full_env: dict[str, str | None] = {
            "PATH": BASE_PATH,
            "HOME": home,
            "TERM": "dumb",
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": CLIENT_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            **(env or {}),
        }
        clean = {name: value for name, value in full_env.items() if value is not None}
        cli_args = ["-p", prompt, "--output-format", "stream-json", "--verbose", *args]
        command = ["timeout", "-k", "5", str(int(timeout)), str(CLAUDE_BIN), *cli_args]
        started = time.monotonic()
        done = subprocess.run(
            command,
            env=clean,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout + 15,
        )
        elapsed = time.monotonic() - started
    run = ClaudeRun(cli_args, done.returncode, done.stdout, done.stderr, elapsed)
    assert done.returncode != 124, f"claude timed out after {timeout}s\n{run.describe()}"
    run.events = parse_ndjson(done.stdout)
    return run


@dataclass
class NodeRun:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_node_script(
    script: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> NodeRun:
    """Run an ESM script so that its bare imports (`@anthropic-ai/sdk`) resolve from the cached
    install: the script is copied next to a `node_modules` link to `.cache/e2e/node_modules`."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH"
    assert NODE_MODULES.is_dir(), f"{NODE_MODULES} is missing: {SETUP_HINT}"
    with tempfile.TemporaryDirectory(prefix="e2e-node-") as workdir:
        (Path(workdir) / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
        copy = Path(workdir) / script.name
        shutil.copyfile(script, copy)
        done = subprocess.run(
            ["timeout", "-k", "5", str(int(timeout)), node, str(copy), *args],
            env={"PATH": os.environ.get("PATH", BASE_PATH), "HOME": workdir, **(env or {})},
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout + 15,
        )
    return NodeRun(done.returncode, done.stdout, done.stderr)
