"""The secrets rule (docs/design.md, "Running it for real"), through real `flashsale` processes.

Outside dev mode `serve`, `persist`, `timers` and `paysim` refuse to start (exit
2, one line on stderr naming the variable, no traceback) when the JWT secret,
or the signing secret of a configured provider, is unset or under 32 bytes;
`flashsale token` needs the real secret too. In dev mode they start.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flashsale.devservers import ChildProcess, free_port

STRONG = "s" * 32
SHORT = "s" * 31
DEAD_REDIS = "redis://127.0.0.1:9/0"  # never reached: the refusal comes first
DEAD_PG = "postgresql://postgres@127.0.0.1:9/none"


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any FLASHSALE_* (so prod mode), plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return base | extra


def _flashsale(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


URLS = {"FLASHSALE_REDIS_URL": DEAD_REDIS, "FLASHSALE_DATABASE_URL": DEAD_PG}


@pytest.mark.parametrize(
    ("command", "env", "variable", "problem"),
    [
        (["serve"], URLS, "FLASHSALE_JWT_SECRET", "is not set"),
        (["serve"], URLS | {"FLASHSALE_JWT_SECRET": SHORT}, "FLASHSALE_JWT_SECRET", "is shorter"),
        (["persist"], URLS, "FLASHSALE_JWT_SECRET", "is not set"),
        (["timers"], URLS | {"FLASHSALE_JWT_SECRET": SHORT}, "FLASHSALE_JWT_SECRET", "is shorter"),
        (["paysim"], {"FLASHSALE_JWT_SECRET": STRONG}, "FLASHSALE_PAYSIM_SECRET", "is not set"),
        (["paysim"], {}, "FLASHSALE_JWT_SECRET", "is not set"),
        (
            ["serve"],
            URLS
            | {
                "FLASHSALE_JWT_SECRET": STRONG,
                "FLASHSALE_PAYSIM_URL": "http://127.0.0.1:9",
                "FLASHSALE_PAYSIM_SECRET": SHORT,
            },
            "FLASHSALE_PAYSIM_SECRET",
            "is shorter",
        ),
        (  # the supervisor would start a simulator: its secret is checked up front
            ["serve", "--with-workers"],
            URLS | {"FLASHSALE_JWT_SECRET": STRONG},
            "FLASHSALE_PAYSIM_SECRET",
            "is not set",
        ),
        (
            ["timers"],
            URLS | {"FLASHSALE_JWT_SECRET": STRONG, "FLASHSALE_PAYSIM_URL": "http://127.0.0.1:9"},
            "FLASHSALE_PAYSIM_SECRET",
            "is not set",
        ),
        (["token", "--user", "ops"], {}, "FLASHSALE_JWT_SECRET", "is not set"),
        (
            ["token", "--user", "ops"],
            {"FLASHSALE_JWT_SECRET": SHORT, "FLASHSALE_ENV": "prod"},
            "FLASHSALE_JWT_SECRET",
            "is shorter",
        ),
    ],
)
def test_outside_dev_mode_a_weak_secret_is_refused_in_one_line(
    command: list[str], env: dict[str, str], variable: str, problem: str
) -> None:
    done = _flashsale(*command, env=_env(**env))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"flashsale: {variable} {problem}"), lines
    assert done.stdout == ""


def test_a_strong_secret_is_accepted_outside_dev_mode() -> None:
    done = _flashsale("token", "--user", "ops", env=_env(FLASHSALE_JWT_SECRET=STRONG))
    assert done.returncode == 0 and done.stdout.count(".") == 2, done.stderr


def _starts(command: list[str], env: dict[str, str], health_url: str) -> None:
    """The process answers its /health, then stops on SIGTERM."""
    argv = [sys.executable, "-m", "flashsale.cli.main", *command]
    with ChildProcess(argv, env=env, ready_url=health_url):
        pass


def test_in_dev_mode_serve_and_paysim_start_without_secrets(redis_url: str) -> None:
    dev = _env(FLASHSALE_ENV="dev", FLASHSALE_REDIS_URL=redis_url, FLASHSALE_DURABILITY="fast")
    port = free_port()
    _starts(["paysim", "--port", str(port)], dev, f"http://127.0.0.1:{port}/health")
    port = free_port()
    _starts(
        ["serve", "--port", str(port), "--workers", "1"], dev, f"http://127.0.0.1:{port}/health"
    )
