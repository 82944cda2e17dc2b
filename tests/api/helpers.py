"""Assertions shared by the API tests."""

from __future__ import annotations

import re
from typing import Any

import httpx

PROBLEM_FIELDS = ("type", "title", "status", "detail", "code")


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an application/problem+json answer with this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    for field in PROBLEM_FIELDS:
        assert field in body, body
    assert body["code"] == code, body
    assert body["status"] == status, body
    return body


NEXT = re.compile(r'^<(?P<target>[^>]+)>; rel="next"$')


async def every_page(client: Any, first: str, headers: dict[str, str]) -> list[list[Any]]:
    """Follow the ``Link: <...>; rel="next"`` headers from ``first`` to the end (bounded)."""
    pages, target = [], first
    for _ in range(1000):
        r = await client.get(target, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        link = r.headers.get("link")
        if link is None:
            return pages
        match = NEXT.match(link)
        assert match, link
        target = match["target"]
    raise AssertionError("no last page")
