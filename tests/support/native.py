"""Replies in the native wire formats of LiteLLM's providers, for the loopback FakeUpstream:
Anthropic Messages, Gemini generateContent, Cohere v2 chat, Bedrock Converse (JSON and the AWS
binary event stream), plus a SigV4 check that recomputes the signature with botocore.

OpenAI, Mistral and Azure OpenAI speak OpenAI chat: the `openai_*` builders here wrap
`support.replies` for them. `bearer`/`header` check how a request authenticated.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

from . import openai_chunks as oc
from .replies import Connection, Reply, completion, json_reply, sse
from .upstream import Recorded

JSON = dict[str, Any]


# -- Anthropic Messages -----------------------------------------------------------------------


def _anthropic_message(content: list[JSON], stop_reason: str) -> JSON:
    return {
        "id": "msg_native_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-native",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 6},
    }


def anthropic_text(text: str) -> Reply:
    return json_reply(_anthropic_message([{"type": "text", "text": text}], "end_turn"))


def anthropic_tool(call_id: str, name: str, arguments: JSON) -> Reply:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
    return json_reply(_anthropic_message([block], "tool_use"))


def anthropic_events(
    blocks: list[tuple[JSON, list[JSON]]], stop_reason: str = "end_turn", output_tokens: int = 6
) -> list[str]:
    """A whole Anthropic event stream as SSE frames (`event:` line and data): message_start,
    a ping, then each (content_block_start block, its deltas), message_delta, message_stop."""
    start = {**_anthropic_message([], stop_reason), "stop_reason": None}
    events: list[JSON] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, (block, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    events.append(
        {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}}
    )
    events.append({"type": "message_stop"})
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


def anthropic_stream(pieces: list[str]) -> Reply:
    text = {"type": "text", "text": ""}
    deltas = [{"type": "text_delta", "text": p} for p in pieces]
    return sse(anthropic_events([(text, deltas)]), done=False)


# -- OpenAI chat (OpenAI, Mistral, Azure OpenAI) ----------------------------------------------


def openai_text(text: str) -> Reply:
    return completion(text)


def openai_tool(call_id: str, name: str, arguments: JSON) -> Reply:
    return completion(
        tool_calls=[oc.tool_call(call_id, name, arguments)], finish_reason="tool_calls"
    )


def openai_stream(pieces: list[str]) -> Reply:
    chunks = [*(oc.chunk({"content": p}) for p in pieces), oc.finish_chunk(), oc.usage_chunk()]
    return sse(chunks)


def openai_tool_names(body: JSON) -> list[str]:
    return [tool["function"]["name"] for tool in body["tools"]]


# -- How a request authenticated --------------------------------------------------------------

AuthCheck = Callable[[Recorded, str], None]


def bearer(key: str) -> AuthCheck:
    def check(seen: Recorded, url: str) -> None:
        assert seen.headers["authorization"] == f"Bearer {key}"

    return check


def header(name: str, key: str) -> AuthCheck:
    """The key in its own header, and no Authorization header beside it."""

    def check(seen: Recorded, url: str) -> None:
        assert seen.headers[name] == key
        assert "authorization" not in seen.headers

    return check


# -- Gemini generateContent -------------------------------------------------------------------

_GEMINI_USAGE = {"promptTokenCount": 11, "candidatesTokenCount": 6, "totalTokenCount": 17}


def _gemini(parts: list[JSON], finish: str | None = "STOP") -> JSON:
    candidate: JSON = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": _GEMINI_USAGE, "modelVersion": "gemini"}


def gemini_text(text: str) -> Reply:
    return json_reply(_gemini([{"text": text}]))


def gemini_tool(name: str, arguments: JSON) -> Reply:
    return json_reply(_gemini([{"functionCall": {"name": name, "args": arguments}}]))


def gemini_stream(pieces: list[str]) -> Reply:
    """`streamGenerateContent?alt=sse`: each event is a whole GenerateContentResponse."""
    chunks = [_gemini([{"text": p}], None) for p in pieces[:-1]]
    chunks.append(_gemini([{"text": pieces[-1]}]))
    return sse(chunks, done=False)


# -- Cohere v2 chat ---------------------------------------------------------------------------

_COHERE_USAGE = {
    "billed_units": {"input_tokens": 11, "output_tokens": 6},
    "tokens": {"input_tokens": 11, "output_tokens": 6},
}


def cohere_text(text: str) -> Reply:
    message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
    body = {"id": "co-1", "finish_reason": "COMPLETE", "message": message, "usage": _COHERE_USAGE}
    return json_reply(body)


def cohere_tool(call_id: str, name: str, arguments: JSON) -> Reply:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    message = {"role": "assistant", "tool_plan": "I will call the tool.", "tool_calls": [call]}
    body = {"id": "co-2", "finish_reason": "TOOL_CALL", "message": message, "usage": _COHERE_USAGE}
    return json_reply(body)


def cohere_stream(pieces: list[str]) -> Reply:
    """Cohere v2 stream events, one JSON object per line: the framing LiteLLM 1.108.7's
    `CohereV2ModelResponseIterator` parses (it reads raw lines, so `event:`/`data:` SSE
    framing fails there). `message-end` carries its delta both at the top level (Cohere's
    documented shape) and under `data` (where that parser looks for the finish reason)."""
    end_delta = {"finish_reason": "COMPLETE", "usage": _COHERE_USAGE}
    events: list[JSON] = [
        {"type": "message-start", "id": "co-3", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        *(
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
            for p in pieces
        ),
        {"type": "content-end", "index": 0},
        {
            "type": "message-end",
            "event": "message-end",
            "delta": end_delta,
            "data": {"delta": end_delta},
        },
    ]
    return sse([json.dumps(e) + "\n" for e in events], done=False)


# -- Bedrock Converse -------------------------------------------------------------------------

_BEDROCK_USAGE = {"inputTokens": 11, "outputTokens": 6, "totalTokens": 17}


def _converse(content: list[JSON], stop_reason: str) -> JSON:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": _BEDROCK_USAGE,
        "metrics": {"latencyMs": 5},
    }


def bedrock_text(text: str) -> Reply:
    return json_reply(_converse([{"text": text}], "end_turn"))


def bedrock_tool(call_id: str, name: str, arguments: JSON) -> Reply:
    block = {"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}}
    return json_reply(_converse([block], "tool_use"))


def eventstream_message(event_type: str, payload: JSON) -> bytes:
    """One `application/vnd.amazon.eventstream` frame: prelude (total length, headers length,
    CRC32), string headers, JSON payload, CRC32 of everything before it."""
    headers = b"".join(
        _string_header(name, value)
        for name, value in (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value
    )


class EventStreamReply(Reply):
    """Binary event-stream frames written as chunks of a chunked response."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def send(self, conn: Connection) -> None:
        conn.start_chunked(200, {"content-type": "application/vnd.amazon.eventstream"})
        for frame in self._frames:
            conn.write_chunk(frame)
        conn.end_chunked()


def bedrock_stream(pieces: list[str]) -> Reply:
    frames = [eventstream_message("messageStart", {"role": "assistant"})]
    frames += [
        eventstream_message("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0})
        for p in pieces
    ]
    frames += [
        eventstream_message("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream_message("messageStop", {"stopReason": "end_turn"}),
        eventstream_message("metadata", {"usage": _BEDROCK_USAGE, "metrics": {"latencyMs": 5}}),
    ]
    return EventStreamReply(frames)


def sigv4_valid(
    request: Recorded,
    host_url: str,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "bedrock",
) -> bool:
    """Recompute the AWS SigV4 signature of a recorded request with botocore, from the same
    fake credentials and the request's own `x-amz-date`, and compare it with the one sent.
    Over the signed headers, method, path and raw body (not the query: Bedrock has none); any
    other secret, region, service or body gives another signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    fields = _authorization_fields(request.headers.get("authorization", ""))
    if not fields:
        return False
    names = fields["SignedHeaders"].split(";")
    headers = {name: request.headers[name] for name in names if name in request.headers}
    replay = AWSRequest(
        method=request.method, url=f"{host_url}{request.path}", data=request.raw, headers=headers
    )
    replay.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(access_key, secret_key), service, region)
    # add_auth() would stamp the current time; sign with the request's own timestamp instead.
    auth._modify_request_before_signing(replay)
    canonical = auth.canonical_request(replay)
    expected = auth.signature(auth.string_to_sign(replay, canonical), replay)
    return bool(expected == fields["Signature"])


def _authorization_fields(authorization: str) -> dict[str, str]:
    """`AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` as a dict."""
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return {}
    parts = authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
    return dict(part.strip().split("=", 1) for part in parts if "=" in part)
