"""The garbage collector of a server worker, settled once the worker has started.

Paced purchases showed p99 spikes of a full collection: after startup a worker
holds a few hundred thousand long-lived objects (modules, the application and
its routes, the OpenAPI document, pools) that every gen-2 collection walked
again. Frozen once, after startup, they leave the collector's generations
(``gc.freeze``), so a collection only walks what requests made. The young
generation's threshold is raised too: a request allocates a few hundred
objects and frees nearly all of them by reference counting, so collecting
every 700 allocations mostly finds nothing.

Only the served workers do this (``app.served_app``): a process that builds
many applications (the tests) would keep every frozen one forever.
"""

from __future__ import annotations

import gc

# gen 0 every 10,000 net allocations (default 700); gen 1 and gen 2 as often as before
THRESHOLDS = (10_000, 10, 10)


def settle() -> None:
    """Collect what startup left, freeze the rest, and collect the young less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
