"""An upstream that answers each request by what its last user message says, so requests
run concurrently (a batch, several router instances) still get their own scripted answer:

    "ok TAG"          -> 200, text "answer TAG"
    "bad TAG"         -> 400 invalid_request_error "bad TAG"
    "limit TAG N"     -> 429 (retry-after 0) the first N times for TAG, then "answer TAG"
    "slow TAG"        -> "answer TAG" after `slow_seconds`

and a request for a model in `down_models` gets 503 (to make a route fall back).

Counts of requests per TAG are kept (`count(tag)`) to check that nothing ran twice.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from .replies import Reply, completion, delayed, error
from .upstream import FakeUpstream, Recorded


def _command(request: Recorded) -> list[str]:
    body: Any = request.json if isinstance(request.json, dict) else {}
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content")
    if isinstance(content, list):  # OpenAI content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "").split()


class ContentScriptedUpstream(FakeUpstream):
    def __init__(self, slow_seconds: float = 0.2) -> None:
        super().__init__()
        self.slow_seconds = slow_seconds
        self.down_models: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    def count(self, tag: str) -> int:
        with self._counts_lock:
            return self._counts[tag]

    @property
    def counts(self) -> Counter[str]:
        with self._counts_lock:
            return Counter(self._counts)

    def clear(self) -> None:
        super().clear()
        with self._counts_lock:
            self._counts.clear()

    def take_reply(self, request: Recorded) -> Reply:
        words = _command(request)
        if len(words) < 2 or not request.path.endswith("/chat/completions"):
            return super().take_reply(request)
        verb, tag = words[0], words[1]
        if str((request.json or {}).get("model")) in self.down_models:
            return error(503, "this model is down")
        with self._counts_lock:
            self._counts[tag] += 1
            seen = self._counts[tag]
        model = str((request.json or {}).get("model", "test/model"))
        answer = completion(f"answer {tag}", model=model)
        if verb == "bad":
            return error(400, f"bad {tag}")
        if verb == "limit" and seen <= int(words[2]):
            return error(429, "rate limited", headers={"retry-after": "0"})
        if verb == "slow":
            return delayed(self.slow_seconds, answer)
        return answer
