"""After-sales evidence: a file's type is judged by its first bytes, never by its name or
the type the client claims; it is stored once by content hash (never a client path)."""

from __future__ import annotations

import hashlib

MAX_FILES = 5
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_REASON_CHARS = 2000


MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "application/pdf")  # what sniff() names


def sniff(data: bytes) -> str | None:
    """The media type of PNG, JPEG, WebP or PDF bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
