"""The real Claude Code CLI (pinned) with task routing, the `/model` picker fed by model
discovery, local side calls, and `anthropic-router code` from a clean HOME.

Upstream-side assertions: which upstream model each request reached (the scripted
OpenAI-compatible upstream records every request).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import openai_chunks as oc
from support import replies
from support.router import SRC_DIR, UPSTREAM_API_KEY, RouterProcess, free_port
from support.upstream import FakeUpstream

from .clients import BASE_PATH, CLAUDE_BIN, run_claude
from .conftest import exchanges, log_mark
from .terminal import DOWN, ENTER, UP, Terminal

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]

CHAT_PATH = "/api/v1/chat/completions"
ROUTING = """
rules:
  - if: background
    use: {model: cheap/background-model}
  - if: thinking
    name: think
    use: {model: deep/thinking-model}
routes:
  gemini-pro: google/gemini-2.5-pro
  claude-kimi: moonshotai/kimi-k2
"""


def text_stream(text: str) -> replies.Reply:
    chunks = [*oc.text_chunks(text, 2), oc.finish_chunk("stop"), oc.usage_chunk(20, 5)]
    return replies.sse(chunks)


def tool_stream(call_id: str, name: str, arguments: dict[str, Any]) -> replies.Reply:
    chunks = oc.tool_call_chunks(0, call_id, name, json.dumps(arguments), n_pieces=3)
    return replies.sse([*chunks, oc.finish_chunk("tool_calls"), oc.usage_chunk()])


def enqueue(upstream: FakeUpstream, *scripted: replies.Reply) -> None:
    """Scripted chat answers; discovery's `GET /models` gets the default list meanwhile."""
    upstream.enqueue(*scripted, path="/chat/completions")


def upstream_models(upstream: FakeUpstream) -> list[str]:
    return [r.json["model"] for r in upstream.requests if r.path == CHAT_PATH]


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routing") / "routes.yaml"
    path.write_text(ROUTING)
    return path


@pytest.fixture(scope="module")
def routed(upstream: FakeUpstream, routing_file: Path) -> Iterator[RouterProcess]:
    with RouterProcess(upstream.url, {"MODEL_MAP_FILE": str(routing_file)}) as process:
        yield process


# 1. One session, routed by conditions: the main loop thinks, its haiku subagent is background.


def test_a_session_is_routed_by_task(routed: RouterProcess, upstream: FakeUpstream) -> None:
    agent = {
        "description": "Quick check",
        "prompt": "Reply with the word ok.",
        "subagent_type": "general-purpose",
        "model": "haiku",
        "run_in_background": False,
    }
    enqueue(
        upstream,
        tool_stream("call_agent_1", "Agent", agent),  # main loop (thinking)
        text_stream("ok"),  # the subagent (haiku: background)
        text_stream("The subagent said ok."),  # main loop again
    )
    mark = log_mark(routed)
    run = run_claude(
        routed.url,
        "ask a subagent to check",
        args=("--allowedTools", "Agent"),
        env={"ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"},
    )
    run.assert_success("The subagent said ok.")
    assert upstream_models(upstream) == [
        "deep/thinking-model",
        "cheap/background-model",
        "deep/thinking-model",
    ]
    records = exchanges(routed, since=mark)
    assert [(r["client_model"], r.get("rule")) for r in records] == [
        ("claude-opus-5-5", "think"),
        ("claude-haiku-4-5", "background"),
        ("claude-opus-5-5", "think"),
    ]


def test_without_thinking_no_rule_matches(routed: RouterProcess, upstream: FakeUpstream) -> None:
    enqueue(upstream, text_stream("plain"))
    mark = log_mark(routed)
    run_claude(routed.url, "hi", env={"CLAUDE_CODE_DISABLE_THINKING": "1"}).assert_success("plain")
    assert upstream_models(upstream) == ["anthropic/claude-sonnet-4.5"]
    [record] = exchanges(routed, since=mark)
    assert "rule" not in record and record["route"] == "default -> BIG_MODEL"


# 2. Model discovery: the routing file's names in the /model picker, and selectable.


def test_model_picker_lists_and_selects_routing_file_names(
    routed: RouterProcess, upstream: FakeUpstream
) -> None:
    with Terminal(routed.url, {"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"}) as tui:
        tui.wait_for("auto mode", timeout=40)
        tui.submit("/model")
        tui.wait_for("Select model")
        selected = []
        for _ in range(30):  # down through the list to our last entry
            selected.append(tui.selected_line())
            if "claude-kimi" in selected[-1]:
                break
            tui.type(DOWN, settle=0.3)
        ours = [line for line in selected if "anthropic-router:" in line]
        assert any("gemini-pro" in line and "google/gemini-2.5-pro" in line for line in ours)
        assert "moonshotai/kimi-k2" in selected[-1], tui.screen()
        tui.type(UP, settle=0.3)
        assert "gemini-pro" in tui.selected_line(), tui.screen()
        tui.type(ENTER, settle=1.0)
        enqueue(upstream, text_stream("hello from gemini"))
        tui.submit("say hello")
        tui.wait_for("hello from gemini", timeout=30)
    chats = [r for r in upstream.requests if r.path == CHAT_PATH]
    assert chats[-1].json["model"] == "google/gemini-2.5-pro"
    # The name Claude Code sent is the listed one; the picker's choice beat the think rule.
    [record] = [r for r in exchanges(routed) if r.get("upstream_model") == "google/gemini-2.5-pro"]
    assert record["client_model"] == "anthropic-router/gemini-pro" and "rule" not in record


# 3. Local side calls: a scripted interactive session, counted with the setting off and on.


def scripted_session(router: RouterProcess, upstream: FakeUpstream) -> dict[str, int]:
    """Two prompts with a `/model` switch between them (Claude Code checks the new model with
    a `max_tokens: 1` call); returns what reached the upstream."""
    before = len(upstream.requests)
    with Terminal(router.url) as tui:
        tui.wait_for("auto mode", timeout=40)
        enqueue(upstream, text_stream("first answer"))
        tui.submit("say something")
        tui.wait_for("first answer", timeout=30)
        tui.submit("/model openai/gpt-5")  # the check gets the upstream's default answer
        # Claude Code may first ask whether to give up its (warm) prompt cache.
        if tui.wait_for_any("Set model to", "Switch model?", timeout=30) == "Switch model?":
            tui.type(ENTER)
            tui.wait_for("Set model to", timeout=30)
        enqueue(upstream, text_stream("second answer"))
        tui.submit("say more")
        tui.wait_for("second answer", timeout=30)
    sent = [r for r in upstream.requests[before:] if r.path == CHAT_PATH]
    upstream.clear()
    return {
        "upstream_calls": len(sent),
        "side_calls": sum(
            1 for r in sent if r.json.get("max_completion_tokens", r.json.get("max_tokens")) == 1
        ),
        "input_bytes": sum(len(r.raw) for r in sent),
    }


def test_local_side_calls_save_the_model_check(
    upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    with RouterProcess(upstream.url) as plain:
        off = scripted_session(plain, upstream)
    with RouterProcess(upstream.url, {"LOCAL_SIDE_CALLS": "true"}) as local:
        on = scripted_session(local, upstream)
        [record] = [r for r in exchanges(local) if r.get("backend") == "local"]
    assert off["side_calls"] == 1 and on["side_calls"] == 0
    assert on["upstream_calls"] == off["upstream_calls"] - 1
    assert record["client_model"] == "openai/gpt-5" and record["usage"]["input_tokens"] > 0
    with capsys.disabled():
        print(f"\nscripted session: off {off}, on {on}; local answer {record['usage']}")


# 4. `anthropic-router code` from a clean HOME: started, reused, stopped.


@pytest.fixture
def clean_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="e2e-code-home-") as home:
        yield Path(home)


def code_env(home: Path, upstream: FakeUpstream, port: int) -> dict[str, str]:
    return {
        "PATH": f"{CLAUDE_BIN.parent}:{BASE_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONPATH": str(SRC_DIR),
        "OPENROUTER_API_KEY": UPSTREAM_API_KEY,
        "OPENROUTER_BASE_URL": f"{upstream.url}/api/v1",
        "PORT": str(port),
        "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def launch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anthropic_router", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_code_starts_reuses_and_stop_ends_the_router(
    clean_home: Path, upstream: FakeUpstream
) -> None:
    port = free_port()
    env = code_env(clean_home, upstream, port)
    pid_file = clean_home / ".local/state/anthropic-router" / f"router-{port}.pid"
    log_file = pid_file.with_suffix(".log")
    try:
        enqueue(upstream, text_stream("first"))
        first = launch(["code", "-p", "say hi", "--output-format", "json"], env, clean_home)
        assert first.returncode == 0, first.stdout + first.stderr
        assert json.loads(first.stdout)["result"] == "first"
        assert "started in the background" in first.stderr
        pid = int(pid_file.read_text())
        status = launch(["status"], env, clean_home)
        assert status.returncode == 0 and f"running (pid {pid})" in status.stdout

        enqueue(upstream, text_stream("second"))
        second = launch(["code", "-p", "again", "--output-format", "json"], env, clean_home)
        assert second.returncode == 0 and json.loads(second.stdout)["result"] == "second"
        assert "started" not in second.stderr and int(pid_file.read_text()) == pid  # reused

        # Claude Code's own exit code and stderr come through (here: an unknown option).
        failed = launch(["code", "--no-such-option"], env, clean_home)
        assert failed.returncode == 1 and "no-such-option" in failed.stderr

        # Each request reached the upstream with the router's key, the client's never.
        sent = [r for r in upstream.requests if r.path == CHAT_PATH]
        assert len(sent) == 2
        assert {r.headers["authorization"] for r in sent} == {f"Bearer {UPSTREAM_API_KEY}"}
        assert '"event":"exchange"' in log_file.read_text()  # the router's log

        stop = launch(["stop"], env, clean_home)
        assert stop.returncode == 0 and f"stopped (pid {pid})" in stop.stdout
        assert not pid_file.exists()
        assert launch(["status"], env, clean_home).returncode == 3
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
