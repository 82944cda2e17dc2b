"""Simulator settings: one small typed object, validated once at start-up."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .faults import Faults

__all__ = ["ALIPAY_RETRY_SCHEDULE_S", "FAST_RETRY_SCHEDULE_S", "PaysimConfig"]

# Gaps (seconds) before each delivery attempt, each counted from the previous
# attempt. Alipay's published cadence: at once, then 4m, 10m, 10m, 1h, 2h, 6h,
# 15h: 8 attempts over about 25 hours.
ALIPAY_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 240, 600, 600, 3600, 7200, 21600, 54000)
# Same shape, compressed for tests and demos: everything is over in 18 s.
FAST_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 1, 2, 5, 10)

Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=86_400.0)]


class PaysimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    secret: str | None = None
    """Callback signing secret; None: the dev secret (`flashsale paysim` passes
    FLASHSALE_PAYSIM_SECRET, and outside dev mode refuses to start without one)."""
    public_url: str | None = None
    """Base of `pay_url`; None uses the base URL the create request came in on."""
    retry_schedule_s: Annotated[tuple[Seconds, ...], msgspec.Meta(min_length=1)] = (
        ALIPAY_RETRY_SCHEDULE_S
    )
    callback_timeout_s: Annotated[float, msgspec.Meta(gt=0.0, le=60.0)] = 5.0
    duplicate_after_s: Seconds = 3.0
    """Wait after an acknowledged callback before a `duplicate_rate` re-delivery."""
    seed: int | None = None
    """Seeds fault draws; None picks one at random (reported by /health)."""
    faults: Faults = msgspec.field(default_factory=Faults)
    """Global faults at start-up."""

    def validated(self) -> PaysimConfig:
        """Re-decode through msgspec so constraints hold for configs built in code too."""
        return msgspec.convert(msgspec.to_builtins(self), PaysimConfig)
