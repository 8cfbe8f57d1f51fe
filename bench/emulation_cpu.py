"""CPU of the emulations on the hot path (issue #16), in process, one core:

- stream translation per upstream chunk, with and without tool-call repair (prose, prose with
  markup, tool-call argument fragments);
- context edits on a Claude Code request: the edit Claude Code sends on every request
  (`clear_thinking_20251015`, keep all) and `clear_tool_uses_20250919` on a long session
  (its input-token trigger needs the prompt counted: that is the cost).

    PYTHONPATH=src python3 bench/emulation_cpu.py [CAPTURED_CLAUDE_CODE_REQUEST.json]

A captured request (`{"body": {...}}` or the body itself) is used as the base of the long
session; without one, a Claude Code-sized request is built (20 KB system, 18 tools).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from anthropic_router import emulation
from anthropic_router.convert import context
from anthropic_router.convert.repair import ToolRepair
from anthropic_router.convert.stream import StreamTranslator
from anthropic_router.tokens import count_tokens

JSON = dict[str, Any]
MODEL = "anthropic/claude-sonnet-4.5"


def best_of(runs: int, work: Callable[[], Any]) -> float:
    """Seconds of the fastest of `runs` runs (process CPU time)."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def chunk(delta: JSON, finish: str | None = None) -> JSON:
    return {"id": "gen", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


PROSE = "The parser reads the header block, splits each line on the first colon and "
MARKUP = "Use `parse()` and <b>not</b> the ``` fence; a < b holds. "


def text_script(piece: str, n: int = 2000) -> list[JSON]:
    words = (piece * (n // 10 + 1)).split(" ")
    return [chunk({"content": w + " "}) for w in words[:n]] + [chunk({}, "stop")]


def tool_script(n: int = 2000) -> list[JSON]:
    head = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "Bash", "arguments": ""},
    }
    script = [chunk({"tool_calls": [head]})]
    body = json.dumps({"command": "echo " + "x" * (n * 4)})
    for i in range(0, len(body), 4):
        script.append(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": body[i : i + 4]}}]})
        )
    return [*script, chunk({}, "tool_calls")]


def per_chunk_us(script: list[JSON], repair: bool) -> float:
    request = {
        "tools": [
            {
                "name": "Bash",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            }
        ]
    }

    def run() -> None:
        translator = StreamTranslator(
            model="m", repair=ToolRepair.for_request(request) if repair else None
        )
        for item in script:
            translator.feed(item)
        translator.finish()

    return best_of(7, run) / len(script) * 1e6


def claude_code_request(path: str | None) -> JSON:
    if path:
        with open(path) as handle:
            data = json.load(handle)
        body = data.get("body", data)
        return json.loads(body) if isinstance(body, str) else body
    tools = [
        {
            "name": f"Tool{i}",
            "description": "d" * 800,
            "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        }
        for i in range(18)
    ]
    system = [{"type": "text", "text": "You are Claude Code. " * 1000}]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 32000,
        "system": system,
        "tools": tools,
        "messages": [{"role": "user", "content": "start"}],
    }


def long_session(base: JSON, tool_uses: int, result_chars: int) -> JSON:
    messages = list(base["messages"])
    for n in range(tool_uses):
        use = {
            "type": "tool_use",
            "id": f"toolu_{n}",
            "name": "Bash",
            "input": {"command": f"cat file_{n}.py"},
        }
        text = "".join(
            f"{i:>6}\tdef function_{n}_{i}(value):  # line of source\n"
            for i in range(result_chars // 48)
        )
        result = {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": text}
        messages += [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    messages.append({"role": "user", "content": "and now?"})
    return {**base, "messages": messages}


def edits_ms(request: JSON, edits: list[JSON]) -> float:
    """The work `ContextRelay` does for one request (emulation._edit_counted, or the edits
    alone when no edit has an input-token trigger)."""
    body = {**request, "context_management": {"edits": edits}}
    triggers = context.input_token_triggers(body)

    def run() -> None:
        if triggers:
            emulation._edit_counted(body, MODEL, triggers)
        else:
            context.apply_context_edits(body, 0, emulation._estimate(emulation._CHAR_RATIO))

    return best_of(5, run) * 1e3


def main() -> None:
    count_tokens({"messages": [{"role": "user", "content": "warm"}]}, MODEL)  # load the vocabulary
    print("stream translation, µs of CPU per upstream chunk (best of 7, 2000-chunk scripts)")
    for name, script in (
        ("prose", text_script(PROSE)),
        ("prose with markup", text_script(MARKUP)),
        ("tool arguments", tool_script()),
    ):
        off, on = per_chunk_us(script, False), per_chunk_us(script, True)
        print(f"  {name:<18} repair off {off:6.2f}   repair on {on:6.2f}   (+{on - off:5.2f})")
    base = claude_code_request(sys.argv[1] if len(sys.argv) > 1 else None)
    print("context edits, ms of CPU per request (best of 5)")
    keep_all = [{"type": "clear_thinking_20251015", "keep": "all"}]
    clear = [{"type": "clear_tool_uses_20250919"}]
    by_uses = [{"type": "clear_tool_uses_20250919", "trigger": {"type": "tool_uses", "value": 10}}]
    session = long_session(base, tool_uses=60, result_chars=9000)
    short = long_session(base, tool_uses=5, result_chars=4000)
    rows = [
        ("Claude Code's own edit (clear_thinking, keep all)", base, keep_all),
        ("clear_tool_uses, default trigger, 60 tool uses", session, clear),
        ("clear_tool_uses, tool_uses trigger, 60 tool uses", session, by_uses),
        ("clear_tool_uses, default trigger, 5 tool uses", short, clear),
    ]
    for name, request, edits in rows:
        tokens = count_tokens(request, MODEL)
        print(f"  {name:<52} {tokens:>7} tokens  {edits_ms(request, edits):8.3f} ms")


if __name__ == "__main__":
    main()
