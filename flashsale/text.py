"""What PostgreSQL can store as text: no NUL character, valid UTF-8 only.

Checked at the edge (``api/text.py``, the token's ``sub``) so that no value a
request carries can dead-letter its write-behind event.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes


def storable(text: str) -> bool:
    """No NUL and encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_bytes(raw: bytes) -> bool:
    """Percent-decoded, these bytes are UTF-8 without NUL."""
    if b"%" not in raw and raw.isascii():
        return b"\x00" not in raw
    decoded = unquote_to_bytes(raw)
    if b"\x00" in decoded:
        return False
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
