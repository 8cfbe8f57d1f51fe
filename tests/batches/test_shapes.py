"""Message Batches wire shapes and create-time validation: tables, no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from anthropic_router.batches import api, runner, shapes
from anthropic_router.errors import ApiError

MESSAGES = [{"role": "user", "content": "hi"}]
PARAMS = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES}


def _resolve(model: str) -> object:
    if model == "refused-model":
        raise ApiError("not_found_error", "model: no route for 'refused-model'")
    return model


def _item(custom_id: Any = "a", **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {**PARAMS, **params}}


def test_a_valid_batch_gives_its_pairs_in_order():
    body = {"requests": [_item("a"), _item("b-2_C", temperature=0.5)]}
    pairs = api.validate_requests(body, 10, _resolve)
    assert [custom_id for custom_id, _ in pairs] == ["a", "b-2_C"]
    assert pairs[1][1]["temperature"] == 0.5


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "request body must be a JSON object"),
        ({}, "requests: Field required"),
        ({"requests": {}}, "requests: Field required"),
        ({"requests": []}, "a batch holds 1 to 3 requests (BATCH_MAX_SIZE), got 0"),
        ({"requests": [_item(str(i)) for i in range(4)]}, "1 to 3 requests"),
    ],
)
def test_batch_level_rules(body: Any, expected: str):
    with pytest.raises(ApiError) as caught:
        api.validate_requests(body, 3, _resolve)
    assert caught.value.status == 400 and caught.value.error_type == "invalid_request_error"
    assert expected in caught.value.message


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("not an object", "Input should be an object with custom_id and params"),
        ({"params": PARAMS}, "custom_id: 1 to 64 characters"),
        (_item(""), "custom_id: 1 to 64 characters"),
        (_item("x" * 65), "custom_id: 1 to 64 characters"),
        (_item("has space"), "custom_id: 1 to 64 characters"),
        (_item("dot.ted"), "custom_id: 1 to 64 characters"),
        (_item(7), "custom_id: 1 to 64 characters"),
        ({"custom_id": "a"}, "params: Input should be an object"),
        ({"custom_id": "a", "params": "x"}, "params: Input should be an object"),
        (_item(stream=True), "params.stream: streaming is not supported in a batch"),
        (_item(max_tokens=None), "params.max_tokens: Input should be"),
        ({"custom_id": "a", "params": {"model": "m", "messages": MESSAGES}}, "params.max_tokens"),
        (_item(messages=[]), "params.messages: at least one message is required"),
        (_item(model=""), "params.model: Input should be a non-empty string"),
        (_item(temperature="hot"), "params.temperature"),
        (_item(model="refused-model"), "params.model: no route for 'refused-model'"),
    ],
)
def test_request_level_rules_name_the_index_and_custom_id(item: Any, expected: str):
    body = {"requests": [_item("first"), item]}
    with pytest.raises(ApiError) as caught:
        api.validate_requests(body, 10, _resolve)
    error = caught.value
    assert error.status == 400 and error.error_type == "invalid_request_error"
    assert "requests.1 (custom_id " in error.message and expected in error.message
    assert error.details is not None
    [problem] = error.details["errors"]
    assert problem["index"] == 1 and expected in problem["message"]


def test_the_full_x_64_custom_id_and_stream_false_are_accepted():
    body = {"requests": [_item("x" * 64, stream=False)]}
    assert api.validate_requests(body, 10, _resolve)[0][0] == "x" * 64


def test_duplicate_custom_ids_are_refused():
    with pytest.raises(ApiError) as caught:
        api.validate_requests({"requests": [_item("a"), _item("b"), _item("a")]}, 10, _resolve)
    assert "requests.2 (custom_id 'a'): custom_id: 'a' is used more than once" in str(caught.value)


def test_every_bad_request_is_reported_in_one_error():
    items = [_item(f"r{i}", max_tokens="x") for i in range(150)]
    with pytest.raises(ApiError) as caught:
        api.validate_requests({"requests": items}, 1000, _resolve)
    error = caught.value
    assert error.message.startswith("150 invalid request(s) in the batch: requests.0")
    assert error.message.endswith("; and 140 more")
    assert error.details is not None and len(error.details["errors"]) == 100
    assert error.details["errors"][99]["custom_id"] == "r99"


def test_batch_ids_look_like_anthropics():
    ids = {shapes.new_batch_id() for _ in range(200)}
    assert len(ids) == 200
    for batch_id in ids:
        assert shapes.BATCH_ID.match(batch_id) and batch_id.startswith("msgbatch_01")
        assert len(batch_id) == len("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF")


def test_rfc3339():
    assert shapes.rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert shapes.rfc3339(1724179044.100435) == "2024-08-20T18:37:24.100435Z"
    assert shapes.rfc3339(None) is None


ROW = {
    "id": "msgbatch_01abc",
    "status": "in_progress",
    "total": 5,
    "created_at": 1724179044.100435,
    "expires_at": 1724179044.100435 + 86400,
    "ended_at": None,
    "cancel_initiated_at": None,
    "archived_at": None,
    "succeeded": 0,
    "errored": 0,
    "canceled": 0,
    "expired": 0,
}


def test_an_open_batch_counts_everything_as_processing_and_has_no_results_url():
    batch = shapes.message_batch({**ROW, "succeeded": 3}, "http://h")
    assert batch == {
        "id": "msgbatch_01abc",
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {
            "processing": 5,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2024-08-20T18:37:24.100435Z",
        "expires_at": "2024-08-21T18:37:24.100435Z",
        "ended_at": None,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": None,
    }


def test_an_ended_batch_has_final_counts_and_a_results_url_until_archived():
    ended = {**ROW, "status": "ended", "ended_at": ROW["created_at"] + 60}
    ended |= {"succeeded": 2, "errored": 1, "canceled": 1, "expired": 1}
    batch = shapes.message_batch(ended, "https://r.example/prefix")
    assert batch["request_counts"] == {
        "processing": 0,
        "succeeded": 2,
        "errored": 1,
        "canceled": 1,
        "expired": 1,
    }
    assert sum(batch["request_counts"].values()) == 5
    assert batch["results_url"] == (
        "https://r.example/prefix/v1/messages/batches/msgbatch_01abc/results"
    )
    archived = shapes.message_batch({**ended, "archived_at": ended["ended_at"] + 1}, "h")
    assert archived["results_url"] is None and archived["archived_at"] is not None


def test_pages_carry_the_cursors_the_sdk_follows():
    assert shapes.page([{"id": "a"}, {"id": "b"}], True) == {
        "data": [{"id": "a"}, {"id": "b"}],
        "has_more": True,
        "first_id": "a",
        "last_id": "b",
    }
    assert shapes.page([], False) == {
        "data": [],
        "has_more": False,
        "first_id": None,
        "last_id": None,
    }


@pytest.mark.parametrize(
    ("state", "stored", "expected"),
    [
        (
            "succeeded",
            shapes.succeeded({"id": "msg_1"}),
            {"type": "succeeded", "message": {"id": "msg_1"}},
        ),
        (
            "errored",
            shapes.errored(ApiError("invalid_request_error", "bad").body("req_1")),
            {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "bad"},
                    "request_id": "req_1",
                },
            },
        ),
        ("canceled", None, {"type": "canceled"}),
        ("expired", None, {"type": "expired"}),
    ],
)
def test_result_lines(state: str, stored: Any, expected: Any):
    for form in (stored, stored.decode() if isinstance(stored, bytes) else stored):
        line = shapes.result_line('id "1"', state, form)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == {"custom_id": 'id "1"', "result": expected}


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ApiError("rate_limit_error", "x"), True),
        (ApiError("overloaded_error", "x"), True),
        (ApiError("timeout_error", "x"), True),
        (ApiError("api_error", "x", status=502), True),
        (ApiError("api_error", "x", status=503), True),
        (ApiError("invalid_request_error", "x", retryable=True, status=409), True),
        (ApiError("invalid_request_error", "x"), False),
        (ApiError("authentication_error", "x"), False),
        (ApiError("permission_error", "x"), False),
        (ApiError("not_found_error", "x"), False),
        (ApiError("request_too_large", "x"), False),
    ],
)
def test_which_failures_a_batch_retries(error: ApiError, retryable: bool):
    assert runner.is_retryable(error) is retryable


def test_backoff_grows_is_capped_and_honours_retry_after():
    for attempts in range(1, 12):
        delay = runner.backoff(attempts, 5.0, 600.0, None)
        assert min(600.0, 5.0 * 2 ** (attempts - 1)) * 0.5 <= delay <= 600.0
    assert runner.backoff(1, 5.0, 600.0, "30") == 30.0
    assert runner.backoff(1, 5.0, 600.0, "9999") == 600.0
    assert 2.5 <= runner.backoff(1, 5.0, 600.0, "Wed, 21 Oct 2015 07:28:00 GMT") <= 5.0


def test_batch_work_backs_off_while_interactive_requests_wait():
    from anthropic_router.batches.share import LAG_LIMIT, Share

    share = Share(16)
    share.observe(LAG_LIMIT * 10, interactive=0)
    assert share.limit == 16  # no interactive request: a late loop is the batch's own
    limits = []
    for lag in (LAG_LIMIT * 2, LAG_LIMIT * 2, LAG_LIMIT * 2, LAG_LIMIT * 2, LAG_LIMIT * 2):
        share.observe(lag, interactive=1)
        limits.append(share.limit)
    assert limits == [8, 4, 2, 1, 1]  # halves, never below one
    share.observe(0.0, interactive=2)
    share.observe(LAG_LIMIT / 2, interactive=2)
    assert share.limit == 3  # on time: one more per probe
    share.observe(LAG_LIMIT * 2, interactive=0)
    assert share.limit == 16


@pytest.mark.anyio
async def test_share_probe_sleeps_while_no_batch_request_runs():
    import asyncio

    from anthropic_router.batches.share import Share, probe

    share = Share(16)
    share.limit = 2  # left low by the last batch
    busy = asyncio.Event()
    probes: list[int] = []

    def interactive() -> int:
        probes.append(1)
        return 1

    task = asyncio.ensure_future(probe(share, interactive, lambda: None, busy))
    await asyncio.sleep(0.1)  # ten probe intervals with nothing running
    assert probes == []  # no timer ran: an idle router does not wake up
    assert share.limit == 16  # and the next batch starts at full width
    busy.set()
    for _ in range(200):
        if probes:
            break
        await asyncio.sleep(0.01)
    assert probes  # with batch work running it measures the loop again
    task.cancel()
