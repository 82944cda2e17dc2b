"""HMAC-SHA256 signatures for simulator callbacks (`X-Paysim-Signature`).

Header value: ``t=<unix seconds>,v1=<hex HMAC(secret, f"{t}." + raw body)>``.
The timestamp is inside the MAC so a captured callback cannot be re-dated;
the tolerance window bounds how long a captured one stays replayable, and
the receiver remembers what it has seen inside that window.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from flashsale.settings import DEV_PAYSIM_SECRET

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "DEV_SECRET",
    "SIGNATURE_HEADER",
    "SignatureError",
    "SignatureErrorReason",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Paysim-Signature"
# Shared by the simulator and the server in dev mode when FLASHSALE_PAYSIM_SECRET
# is unset, so the demo works with no environment at all. Never outside dev mode.
DEV_SECRET = DEV_PAYSIM_SECRET
DEFAULT_TOLERANCE_S = 300

SignatureErrorReason = Literal["missing", "malformed", "stale", "bad_signature"]


class SignatureError(ValueError):
    """A callback signature that must be refused (the server answers 401)."""

    def __init__(self, reason: SignatureErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: SignatureErrorReason = reason


def _mac(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, t: int) -> str:
    """The `X-Paysim-Signature` header value for `body` signed at unix time `t`."""
    return f"t={t},v1={_mac(secret, t, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    t: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            raise SignatureError("malformed", "expected comma-separated key=value pairs")
        if key == "t":
            if t is not None or not value.isascii() or not value.isdigit():
                raise SignatureError("malformed", "t must appear once, as unix seconds")
            t = int(value)
        elif key == "v1":
            signatures.append(value)
        # Unknown keys are ignored so a future scheme (v2=...) can be added alongside.
    if t is None or not signatures:
        raise SignatureError("malformed", "t and v1 are both required")
    return t, signatures


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a signature header against the raw body; return its timestamp.

    The MAC is checked before the clock so a tampered request reports
    `bad_signature` and only a genuine but old one reports `stale`.
    Several `v1=` entries are accepted (any may match) to allow key rotation.
    """
    if header is None or not header.strip():
        raise SignatureError("missing", f"no {SIGNATURE_HEADER} header")
    t, candidates = _parse(header)
    expected = _mac(secret, t, body)
    # Constant-time per candidate and no early exit; bytes, because
    # compare_digest refuses non-ASCII str (a hostile header could hold some).
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.lower().encode())
    if not matched:
        raise SignatureError("bad_signature", "no v1 signature matches the body")
    if abs(now - t) > tolerance_s:
        raise SignatureError("stale", f"timestamp {t} is {now - t} s off, over {tolerance_s} s")
    return t
