"""Every user mistake is one line on stderr and an exit code, run as a real `flashsale` process.

2 for usage and configuration (unknown option, missing argument, bad value,
unset variable, a database that does not exist), 1 when the command ran and the
answer is no (unknown sale or refund, a service that refuses the connection,
a schema not yet created). Never a traceback.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import Cli

DEAD = "127.0.0.1:9"  # nothing listens on the discard port


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    # usage: the command line is wrong
    Case(("sale", "status", "--bogus"), 2, "No such option: --bogus"),
    Case(("sale", "create"), 2, "--name"),
    Case(("sale", "create", "--name", "x", "--range", "5", "1"), 2, "validation_error"),
    Case(("sale", "tune", "nope"), 2, "nothing to change"),
    Case(("payments", "refunds", "--status", "lost"), 2, "status must be one of"),
    # configuration
    Case(("sale", "status"), 2, "FLASHSALE_REDIS_URL is not set", {"FLASHSALE_REDIS_URL": ""}),
    Case(("config",), 2, "FLASHSALE_REDIS_TIMEOUT_MS", {"FLASHSALE_REDIS_TIMEOUT_MS": "soon"}),
    # a sale that does not exist
    Case(("sale", "status", "nope"), 1, "sale_not_found"),
    Case(("sale", "tune", "nope", "--status", "paused"), 1, "sale_not_found"),
    Case(("sale", "watch", "nope", "--iterations", "1"), 1, "sale_not_found"),
    Case(("verify", "nope"), 1, "sale_not_found"),
    Case(("audit", "nope"), 1, "sale_not_found"),
    Case(("payments", "audit", "nope"), 1, "sale_not_found"),
    Case(("payments", "invalidate", "nope"), 1, "sale_not_found"),
    # a refund that does not exist
    Case(("payments", "approve", "rf_nope"), 1, "refund_not_found"),
    Case(("payments", "reject", "rf_nope"), 1, "refund_not_found"),
    # services that refuse the connection
    Case(("sale", "status"), 1, "Redis", {"FLASHSALE_REDIS_URL": f"redis://{DEAD}/0"}),
    Case(
        ("payments", "refunds"),
        1,
        "cannot connect",
        {"FLASHSALE_DATABASE_URL": f"postgresql://postgres@{DEAD}/x"},
    ),
]


def _ids(case: Case) -> str:
    return " ".join(case.args) + (f" [{','.join(case.env)}]" if case.env else "")


def _check(cli: Cli, case: Case) -> str | None:
    """None when the command answered as it must; else what went wrong."""
    done = cli.run(*case.args, **case.env)
    lines = done.stderr.splitlines()
    problems = []
    if done.returncode != case.code:
        problems.append(f"exit {done.returncode}, not {case.code}")
    if len(lines) != 1 or not lines[0].startswith("flashsale: "):
        problems.append(f"stderr is not one line: {done.stderr!r}")
    elif case.says not in lines[0]:
        problems.append(f"{case.says!r} not in {lines[0]!r}")
    if "Traceback" in done.stderr + done.stdout:
        problems.append("a traceback")
    return f"{_ids(case)}: {'; '.join(problems)}" if problems else None


def test_each_mistake_is_one_line_and_an_exit_code(cli: Cli) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = [problem for problem in pool.map(lambda c: _check(cli, c), CASES) if problem]
    assert not found, "\n".join(found)


def test_a_missing_database_or_schema_is_named(cli: Cli) -> None:
    missing = cli.run("audit", "x", FLASHSALE_DATABASE_URL=cli.missing_database_url)
    assert missing.returncode == 2, missing.stderr
    [line] = missing.stderr.splitlines()
    assert "does not exist" in line and "FLASHSALE_DATABASE_URL" in line
    empty = cli.run("payments", "refunds", FLASHSALE_DATABASE_URL=cli.empty_database_url)
    assert empty.returncode == 1, empty.stderr
    [line] = empty.stderr.splitlines()
    assert "flashsale db upgrade" in line


def test_usage_without_a_command_prints_the_help(cli: Cli) -> None:
    done = cli.run("sale")
    assert done.returncode == 2
    assert "create" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_bug_is_one_line_naming_its_traceback_file() -> None:
    from flashsale.cli import boundary

    assert boundary.describe(KeyError("x")) is None  # not a user's mistake
    line = boundary._crash_line(KeyError("x"))
    path = line.rsplit("traceback in ", 1)[1].rstrip(")")
    try:
        assert line.startswith("internal error: KeyError")
        assert "KeyError" in Path(path).read_text()
    finally:
        os.unlink(path)


def test_an_http_timeout_names_its_kind_and_request() -> None:
    """httpx's timeouts often carry no message: the line says what timed out, and where."""
    import httpx

    from flashsale.cli import boundary

    request = httpx.Request("POST", "http://127.0.0.1:9/v1/orders/o-1/payments")
    described = boundary.describe(httpx.PoolTimeout("", request=request))
    assert described is not None
    line, code = described
    assert line == ("HTTP PoolTimeout (POST http://127.0.0.1:9/v1/orders/o-1/payments): no message")
    assert code == boundary.FAILED
    without_request = boundary.describe(httpx.RemoteProtocolError("bad answer"))
    assert without_request == ("HTTP RemoteProtocolError: bad answer", boundary.FAILED)
