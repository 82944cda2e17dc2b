"""Named points where a process can be made to die (SIGKILL), to test repairs for real.

``FLASHSALE_CRASH_AT=<name>`` (honoured only with ``FLASHSALE_ENV=dev``): the
process kills itself, without cleanup, the moment it reaches ``crash_point(name)``,
as a power cut between two steps would. Tests run a real child process with it
and check that the timers finish the half-done transition.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("FLASHSALE_CRASH_AT") if os.environ.get("FLASHSALE_ENV") == "dev" else None


def crash_point(name: str) -> None:
    """Die here when armed for ``name``; nothing otherwise (one comparison)."""
    if _ARMED is not None and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
