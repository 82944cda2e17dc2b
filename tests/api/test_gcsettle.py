"""A served worker settles its garbage collector once started (api/gcsettle.py)."""

from __future__ import annotations

import os
import subprocess
import sys

# In a process of its own: freezing is for good, and the tests build many applications.
_PROBE = """
import gc
from flashsale.api.app import served_app
from flashsale.api.gcsettle import THRESHOLDS, settle
app = served_app()
assert settle in app.on_startup, app.on_startup
assert gc.get_freeze_count() == 0
settle()
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
assert gc.get_threshold() == THRESHOLDS
print("settled", gc.get_freeze_count())
"""


def test_served_app_freezes_what_startup_made() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")},
        "FLASHSALE_ENV": "dev",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("settled")
