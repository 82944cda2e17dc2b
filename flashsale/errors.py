"""One error tree for every refusal flashsale gives, each with its stable code and HTTP status.

::

    FlashsaleError                      code, status, advice (class attributes)
    ├── ValidationFailed                validation_error 422 (shared by every layer)
    ├── DatabaseUnavailable             database_unavailable 503 (shared by every layer)
    ├── engine refusals                 flashsale/engine/errors.py (sold_out 409, ...)
    ├── payment refusals                flashsale/payments/errors.py (insufficient_balance 409, ...)
    └── HTTP-only refusals              flashsale/api/problems.py (unauthenticated 401, ...)

A refusal is raised once, where it is known, with its class; the API turns any
``FlashsaleError`` into ``application/problem+json`` from these attributes
alone (``api/problems.py``), and the CLI prints ``code: detail``. Each code has
exactly one class; ``docs/errors.md`` (the error-code reference) is generated
from the tree (``flashsale.api.error_codes``) and a test keeps it current.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FlashsaleError(Exception):
    """Base of every refusal; ``code`` and ``status`` are part of the public contract."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    advice: ClassVar[str] = "A bug on our side: retry later; report the time of the request."

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code.replace("_", " ")
        self.extra = extra


class ValidationFailed(FlashsaleError):
    """The request is malformed or a value is out of range; nothing was changed."""

    code = "validation_error"
    status = 422
    advice = "Fix the request as `errors` (or `detail`) says; retrying it unchanged fails again."


class DatabaseUnavailable(FlashsaleError):
    """PostgreSQL did not answer (down, restarting, pool exhausted)."""

    code = "database_unavailable"
    status = 503
    advice = "PostgreSQL did not answer: retry after `Retry-After`; nothing was changed."


def all_error_classes(root: type[FlashsaleError] = FlashsaleError) -> list[type[FlashsaleError]]:
    """Every class of the tree that is imported, root first (depth first, by name)."""
    found: list[type[FlashsaleError]] = [root]
    for sub in sorted(root.__subclasses__(), key=lambda cls: cls.__name__):
        found.extend(all_error_classes(sub))
    return found
