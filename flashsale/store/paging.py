"""Keyset pages for the admin listings: a page of rows and an opaque cursor to the next one.

A cursor is the sort key of the last row shown (base64url of its JSON), so a
page costs one index range scan however deep it is, and rows inserted while an
operator pages never shift what comes next. A cursor that does not decode is
the caller's mistake: ``validation_error``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flashsale.errors import ValidationFailed

T = TypeVar("T")
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this was the last page


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The sort key a cursor holds; ``validation_error`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("cursor is not one this server gave out") from None
    if not isinstance(key, list) or len(key) != arity:
        raise ValidationFailed("cursor is not one this server gave out")
    return key


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be 1 to {MAX_LIMIT}")
    return limit
