"""Delivers signed callbacks in the background, retrying until acknowledged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
import msgspec

from ..signing import SIGNATURE_HEADER, sign
from .state import DeliveryJob, Notice
from .wire import Stats

__all__ = ["Notifier"]

log = logging.getLogger("flashsale.paysim.notifier")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Notifier:
    """One background task per paid trade; only an HTTP 200 counts as acknowledged.

    Tasks die with the process: a restart loses pending retries, exactly the
    lost-callback case the merchant's active query has to cover anyway.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        secret: str,
        schedule: Sequence[float],
        duplicate_after_s: float,
        stats: Stats,
        wall_clock: Callable[[], float] = time.time,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._client = client
        self._secret = secret
        self._schedule = tuple(schedule)
        self._duplicate_after_s = duplicate_after_s
        self._stats = stats
        self._wall_clock = wall_clock
        self._now = now
        # Strong references: the loop keeps only weak ones, and an unreferenced
        # task can be garbage-collected mid-retry.
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, job: DeliveryJob) -> None:
        self._stats.deliveries_in_flight += 1
        task = asyncio.create_task(self._run(job), name=f"paysim-notify-{job.notice.trade_no}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: DeliveryJob) -> None:
        try:
            if job.plan.drop:
                # Dropped at the source: no attempt ever leaves (the lost callback).
                self._stats.callbacks_dropped += 1 if job.stale is None else 2
                log.info("dropping callbacks of %s (fault)", job.notice.trade_no)
                return
            acked = await self._deliver(job.notify_url, job.notice, job.plan.delay_s)
            if job.stale is not None:
                self._stats.notices_stale += 1
                await self._deliver(job.notify_url, job.stale, 0.0)
            if job.plan.duplicate and acked:
                await asyncio.sleep(self._duplicate_after_s)
                self._stats.notices_duplicated += 1
                await self._deliver(job.notify_url, job.notice, 0.0)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not vanish with the task
            log.exception("callback delivery for %s crashed", job.notice.trade_no)
        finally:
            self._stats.deliveries_in_flight -= 1

    async def _deliver(self, url: str, notice: Notice, first_delay_s: float) -> bool:
        """Attempt per the retry schedule until a 200; False once the schedule runs out."""
        self._stats.notices_scheduled += 1
        for attempt, gap in enumerate(self._schedule, start=1):
            wait = gap + (first_delay_s if attempt == 1 else 0.0)
            if wait > 0:
                await asyncio.sleep(wait)
            if await self._attempt(url, notice, attempt):
                return True
        self._stats.notices_given_up += 1
        log.warning("gave up on %s after %d attempts", notice.notify_id, len(self._schedule))
        return False

    async def _attempt(self, url: str, notice: Notice, attempt: int) -> bool:
        # Fresh timestamp and notify_time on every attempt: a re-delivery is a
        # new signed message, never a byte-for-byte replay of an earlier one.
        body = msgspec.json.encode(notice.body(self._now()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "flashsale-paysim/1",
            SIGNATURE_HEADER: sign(body, self._secret, int(self._wall_clock())),
        }
        self._stats.callbacks_sent += 1
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._stats.callbacks_failed += 1
            log.info("callback %s attempt %d failed: %r", notice.notify_id, attempt, exc)
            return False
        if response.status_code == 200:
            self._stats.callbacks_acked += 1
            return True
        self._stats.callbacks_failed += 1
        log.info(
            "callback %s attempt %d answered %d", notice.notify_id, attempt, response.status_code
        )
        return False
