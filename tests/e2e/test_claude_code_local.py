"""The real Claude Code CLI through the router to a real local server: llama-cpp-python's
server with a tiny random-weight model (tests/support/llama_server.py). The model writes
gibberish, so these runs assert on the protocol (a successful result, real usage, clean
exchanges), never on words. Tool loops are driven by the SDK with a forced tool_choice in
tests/integration/test_local_server.py: a random model does not choose a tool by itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.llama_server import MODEL_ALIAS, LlamaServer
from support.router import RouterProcess

from .clients import run_claude
from .conftest import exchanges

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("claude_cli")]

# Claude Code treats a max_tokens stop as an error; the tiny model ends in ~9 tokens.
SHORT = {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "256"}


@pytest.fixture(scope="module")
def local_router() -> Iterator[RouterProcess]:
    with LlamaServer() as llama, llama.router() as router:
        yield router


@pytest.mark.parametrize(
    "args",
    [("--bare", "--tools", ""), ("--tools", "")],
    ids=["bare", "full-system-prompt"],
)
def test_claude_code_completes_against_llama_cpp_python(
    local_router: RouterProcess, args: tuple[str, ...]
) -> None:
    since = len(local_router.stderr())
    run = run_claude(local_router.url, "Say hello.", args=args, env=SHORT, timeout=240)
    result = run.assert_success()
    usage = result["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0, result

    records = exchanges(local_router, since=since)
    assert records, local_router.logs()
    for record in records:
        assert record["status"] == 200 and "error_type" not in record, record
        assert record["backend"] == "openai_compatible" and record["upstream_model"] == MODEL_ALIAS
        assert record["usage"]["input_tokens"] > 0, record
    # Claude Code streams; llama-cpp-python sends no usage in streams: the router's estimate.
    assert any(r["stream"] and r.get("usage_estimated") for r in records), records
