"""Assertions shared by the API tests."""

from __future__ import annotations

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
