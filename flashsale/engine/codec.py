"""The one bytes-or-text helper: redis-py answers bytes, our hot path and scripts answer str."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """``value`` as text: bytes decoded as UTF-8, anything else through ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
