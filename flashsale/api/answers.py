"""Answers of the purchase path, their headers encoded once per process.

Litestar's ``ASGIResponse`` builds a header mapping for every answer; the
purchase answers one of a few shapes (201/200 JSON, a problem with or without
``Retry-After``), so ``Prepared`` keeps each shape's header list as bytes and
adds only the length. A refusal without extras (every one but
``limit_reached``'s order ids) is the same answer every time for its class and
detail: built once (``refusal``), then handed out again; ``Prepared`` holds no
per-request state, so one instance may answer any number of requests.
"""

from __future__ import annotations

from litestar.response.base import ASGIResponse

from flashsale.api.problems import PROBLEM_JSON, problem_bytes
from flashsale.errors import FlashsaleError

JSON_HEADERS = ((b"content-type", b"application/json"),)
PROBLEM_HEADERS = ((b"content-type", PROBLEM_JSON.encode("ascii")),)
UNAVAILABLE_HEADERS = ((b"retry-after", b"1"), *PROBLEM_HEADERS)
_MAX_PREPARED = 1024  # distinct (class, detail) refusals kept; details are few and fixed


class Prepared(ASGIResponse):
    """An ``ASGIResponse`` whose headers are already bytes (no cookies, no background)."""

    __slots__ = ("_fixed",)

    def __init__(  # not super().__init__: that is the per-answer work this class avoids
        self, body: bytes, status_code: int, headers: tuple[tuple[bytes, bytes], ...]
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.content_length = len(body)
        self.background = None
        self.is_head_response = False
        self.encoding = "utf-8"
        self._encoded_cookies = ()
        self._fixed = (*headers, (b"content-length", str(len(body)).encode("ascii")))

    def encode_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._fixed)  # a fresh list: a middleware may extend it


def json_answer(body: bytes, status_code: int) -> Prepared:
    return Prepared(body, status_code, JSON_HEADERS)


_REFUSALS: dict[tuple[type[FlashsaleError], str], Prepared] = {}


def refusal(exc: FlashsaleError) -> Prepared:
    """The problem+json answer of a refusal (``Retry-After: 1`` with a 503)."""
    key = (type(exc), exc.detail)
    if not exc.extra:
        answer = _REFUSALS.get(key)
        if answer is not None:
            return answer
    status, body = problem_bytes(exc)
    answer = Prepared(body, status, UNAVAILABLE_HEADERS if status == 503 else PROBLEM_HEADERS)
    if not exc.extra and exc.code != FlashsaleError.code:  # an internal error is logged each time
        if len(_REFUSALS) >= _MAX_PREPARED:
            _REFUSALS.clear()
        _REFUSALS[key] = answer
    return answer
