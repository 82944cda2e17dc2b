"""What the hot path's transport can promise about a call, and the knobs that bound it.

A script call either was never written to Redis's socket, or was written.
That is the one distinction a caller needs to tell the truth (docs/design.md,
"Answers that are the truth"):

- ``CallNotSent``: nothing was written (no connection, the node is not
  answering so nothing is sent to it, the worker's queue is full, the call's
  deadline passed while it waited): the script did not run and never will.
- ``ReplyLost``: the call was written and its reply did not come (the
  deadline passed, the connection broke): the script may or may not have run.

Every other outcome is the script's own reply, delivered per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flashsale.settings import DurabilityMode


class CallNotSent(ConnectionError):
    """The call was not written to Redis: it did not run and will not."""

    def __init__(self, detail: str, *, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.timed_out = timed_out  # the node did not answer in time (it may be frozen)


class ReplyLost(ConnectionError):
    """The call was written but its reply did not come: it may have run.

    ``received`` holds the replies that did come, in order, for the calls
    written first (a pipelined batch's replies come back in order)."""

    def __init__(
        self, detail: str, *, timed_out: bool = False, received: list[Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.received = received or []


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportOptions:
    """How the hot path talks to one Redis node (each cluster node gets its own queue)."""

    timeout_ms: int = 2000  # a call's deadline, counted from the moment it is made
    max_pending: int = 10_000  # calls queued or in flight; past it a call is refused at once
    max_batch: int = 512  # calls written in one batch
    max_in_flight: int = 4  # batches travelling at once, one connection each
    # ``durable``: every new connection checks the server (engine/durability.py) and
    # each batch WAITs for the replicas Redis is told to require; ``fast``: neither.
    durability: DurabilityMode = "fast"
    wait_replicas: int = 0  # a fixed WAIT per batch whatever the mode (the durability bench)
    wait_timeout_ms: int = 1000  # WAIT's own timeout, once the batch's replies came
    # a server's AOF shortfalls are warnings for processes that acknowledge purchases;
    # a one-shot tool (``flashsale sale tune``) logs them at debug level
    warn_durability: bool = True

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000
