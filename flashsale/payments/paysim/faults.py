"""Switchable faults and the per-payment delivery plan drawn from them."""

from __future__ import annotations

import random
from typing import Annotated

import msgspec

__all__ = ["DeliveryPlan", "Faults", "plan_delivery", "rng_for"]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# An hour is far past any sane client timeout and keeps a typo from parking a task for days.
Delay = Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)]


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fault knobs. A PUT replaces the whole set: fields left out fall back to off."""

    drop_rate: Rate = 0.0
    """Chance that a payment's callbacks are never delivered at all (the lost callback, 掉单)."""
    delay_s: Delay = 0.0
    """Extra wait before the first delivery attempt of the success callback."""
    duplicate_rate: Rate = 0.0
    """Chance that an acknowledged success callback is delivered again later (same notify_id)."""
    out_of_order: bool = False
    """Also deliver a stale `pending` notice after the success one."""
    query_fail_rate: Rate = 0.0
    """Chance that `GET /trades/{trade_no}` answers 503."""
    query_delay_s: Delay = 0.0
    """Wait before answering `GET /trades/{trade_no}` (to trip client timeouts)."""


class DeliveryPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What happens to the callbacks of one payment, decided once when it is paid."""

    drop: bool
    delay_s: float
    duplicate: bool
    out_of_order: bool


def rng_for(seed: int, out_trade_no: str, purpose: str) -> random.Random:
    """A generator private to one trade and purpose.

    Keyed by our payment id rather than by arrival order, so a seeded run
    draws the same faults for the same payments however requests interleave.
    String seeds are hashed with SHA-512, stable across processes.
    """
    return random.Random(f"{seed}:{out_trade_no}:{purpose}")


def plan_delivery(faults: Faults, rng: random.Random) -> DeliveryPlan:
    # Always draw both numbers so one knob's value never shifts another's draws.
    drop_draw, duplicate_draw = rng.random(), rng.random()
    return DeliveryPlan(
        drop=drop_draw < faults.drop_rate,
        delay_s=faults.delay_s,
        duplicate=duplicate_draw < faults.duplicate_rate,
        out_of_order=faults.out_of_order,
    )
