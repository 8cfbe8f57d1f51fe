"""Citation markers in the model's text -> Anthropic `citations` on text blocks. Pure.

The model is shown numbered search results and asked to cite them as `[n]`. Anthropic's
answer has the cited claim as its own text block with `citations`
(`web_search_result_location`: url, title, cited_text from the source, encrypted_index),
so the text is cut after each marker, the marker removed and its citations attached to the
text before it. The splitter works on deltas, holding back only what could still become a
marker, so a stream and a whole message are cut the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from anthropic_router.convert.server_tools import SearchResult, seal

JSON = dict[str, Any]

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# What could still become a marker, and the whitespace before it: "claim [1]." reads
# "claim" + citation, then ".", so the space before a marker is dropped.
_PARTIAL = re.compile(r"(?:\s*\[[\d,\s]{0,16}|\s+)$")
_CITED_TEXT_LIMIT = 150  # Anthropic: "up to 150 characters of the cited content"


def web_citation(result: SearchResult) -> JSON:
    return {
        "type": "web_search_result_location",
        "url": result.url,
        "title": result.title,
        "cited_text": result.snippet[:_CITED_TEXT_LIMIT],
        "encrypted_index": seal({"u": result.url}),
    }


@dataclass
class CitationSplitter:
    """`feed(text)` / `finish()` -> pieces: `("text", str)` to append to the current text
    block, `("cite", [citation, ...])` to attach to it and end it."""

    sources: dict[int, SearchResult]
    _held: str = ""
    pieces: list[tuple[str, Any]] = field(default_factory=list)

    def feed(self, text: str) -> list[tuple[str, Any]]:
        buffer = self._held + text
        self._held = ""
        out: list[tuple[str, Any]] = []
        position = 0
        for match in _MARKER.finditer(buffer):
            citations = self._citations(match.group(1))
            if not citations:
                continue
            before = buffer[position : match.start()].rstrip(" \t")
            if before:
                out.append(("text", before))
            out.append(("cite", citations))
            position = match.end()
        rest = buffer[position:]
        partial = _PARTIAL.search(rest)
        if partial:
            self._held = rest[partial.start() :]
            rest = rest[: partial.start()]
        if rest:
            out.append(("text", rest))
        return out

    def finish(self) -> list[tuple[str, Any]]:
        held, self._held = self._held, ""
        return [("text", held)] if held else []

    def _citations(self, numbers: str) -> list[JSON]:
        found = []
        for number in numbers.split(","):
            result = self.sources.get(int(number.strip()))
            if result is not None:
                found.append(web_citation(result))
        return found


def cite_blocks(text: str, sources: dict[int, SearchResult]) -> list[JSON]:
    """One text of a whole message as text blocks, cited ones carrying `citations`."""
    splitter = CitationSplitter(sources)
    blocks: list[JSON] = []
    current: JSON | None = None
    for kind, value in [*splitter.feed(text), *splitter.finish()]:
        if kind == "text":
            if current is None:
                current = {"type": "text", "text": ""}
                blocks.append(current)
            current["text"] += value
        else:
            if current is None:
                current = {"type": "text", "text": ""}
                blocks.append(current)
            current["citations"] = value
            current = None
    return [block for block in blocks if block["text"] or block.get("citations")]
