"""The purchase path's prepared answers send what Litestar's own answers sent."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.types import Message

from flashsale.api.answers import json_answer, refusal
from flashsale.engine.errors import EngineUnavailable, LimitReached, SoldOut


async def sent(answer: Any) -> list[Message]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    async def receive() -> Message:
        raise AssertionError("an answer reads nothing")

    await answer({"type": "http"}, receive, send)
    return messages


async def test_a_refusal_is_built_once_and_answers_again() -> None:
    first, again = refusal(SoldOut()), refusal(SoldOut())
    assert first is again
    for _ in range(2):  # the same instance, twice: nothing of the first answer remains
        start, body = await sent(first)
        assert start["status"] == 409
        problem = msgspec.json.decode(body["body"])
        assert (problem["code"], problem["status"]) == ("sold_out", 409)
        assert dict(start["headers"]) == {
            b"content-type": b"application/problem+json",
            b"content-length": str(len(body["body"])).encode(),
        }
    assert refusal(SoldOut("another detail")) is not first


async def test_unavailable_says_when_to_retry_and_extras_are_never_shared() -> None:
    start, _ = await sent(refusal(EngineUnavailable("redis away")))
    assert (start["status"], dict(start["headers"])[b"retry-after"]) == (503, b"1")
    mine = refusal(LimitReached("limit", scope="user", order_ids=["a.1"], limit=1))
    theirs = refusal(LimitReached("limit", scope="user", order_ids=["b.2"], limit=1))
    assert mine is not theirs
    _, body = await sent(theirs)
    assert msgspec.json.decode(body["body"])["order_ids"] == ["b.2"]


async def test_json_answer_headers_are_a_fresh_list_each_time() -> None:
    answer = json_answer(b'{"ok":true}', 201)
    first = answer.encode_headers()
    first.append((b"x-request-id", b"1"))  # the access log's middleware extends the list
    assert answer.encode_headers() == [
        (b"content-type", b"application/json"),
        (b"content-length", b"11"),
    ]
