"""Shared pieces of the benchmarks: where Redis is, medians with spread, Markdown rows."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flashsale.settings import Settings


@dataclass(frozen=True)
class Figure:
    """A median of several runs with its spread (min..max)."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def show(self, unit: str = "", digits: int = 0) -> str:
        lo, hi = min(self.runs), max(self.runs)
        return f"{self.median:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


@contextmanager
def bench_redis_url() -> Iterator[str]:
    """FLASHSALE_REDIS_URL when set, else a private embedded Redis for the run."""
    url = Settings.from_env().redis.url
    if url:
        yield url
        return
    from flashsale.devservers import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


def machine_line() -> str:
    return f"{os.cpu_count()} cores"
