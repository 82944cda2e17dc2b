"""Where a ``flashsale`` command meets its user: every mistake is one line and an exit code.

The root command group (``ToolGroup``) runs every command and turns what
escapes it into one line on stderr, never a traceback:

- a usage mistake (unknown option, missing argument, bad value): exit 2;
- a configuration mistake (``ConfigError``, a refused ``validation_error``): exit 2;
- a refusal of the system (``FlashsaleError``: ``sale_not_found``, ...), a
  service that does not answer (Redis, PostgreSQL, the payment provider), a
  database that does not exist or has no schema yet: exit 1;
- a bug: one line naming the exception and the file its traceback was written to.

Commands that find a problem themselves (an audit with violations) print
their report and exit 1; ``typer.Exit`` passes through unchanged.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import typer
from redis.exceptions import RedisError

# typer 0.29 carries its own click (typer._click): its exceptions are the ones raised
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from flashsale.errors import FlashsaleError, ValidationFailed
from flashsale.payments.provider import ProviderError
from flashsale.settings import ConfigError

USAGE = 2  # the command line or the configuration is wrong: fix it and run again
FAILED = 1  # the command ran and the answer is no (refused, unreachable, a failed check)


def _redis_line(exc: RedisError) -> str:
    return f"Redis did not answer as expected (FLASHSALE_REDIS_URL): {exc}"


def _postgres_line(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (
            f"PostgreSQL: {exc} (FLASHSALE_DATABASE_URL): create it, then `flashsale db upgrade`",
            USAGE,
        )
    if isinstance(exc, asyncpg.UndefinedTableError):
        return f"PostgreSQL: {exc}: the schema is missing, run `flashsale db upgrade`", FAILED
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):  # the password too
        return f"PostgreSQL refused the login (FLASHSALE_DATABASE_URL): {exc}", USAGE
    return f"PostgreSQL: {exc}", FAILED


def describe(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) for a mistake a user can act on; None for a bug."""
    if isinstance(exc, ConfigError):
        return str(exc), USAGE
    if isinstance(exc, ValidationFailed):
        return f"{exc.code}: {exc.detail}", USAGE
    if isinstance(exc, FlashsaleError):
        return f"{exc.code}: {exc.detail}", FAILED
    if isinstance(exc, RedisError):
        return _redis_line(exc), FAILED
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return _postgres_line(exc)
    if isinstance(exc, ProviderError):
        return f"payment provider (FLASHSALE_PAYSIM_URL): {exc}", FAILED
    if isinstance(exc, httpx.HTTPError):
        # a timeout's message is often empty: name the kind and the request
        where = ""
        try:
            where = f" ({exc.request.method} {exc.request.url})"
        except RuntimeError:  # an error raised outside any request
            pass
        return f"HTTP {type(exc).__name__}{where}: {str(exc) or 'no message'}", FAILED
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        # what asyncpg raises while connecting (refused, unknown host, timeout)
        return f"cannot connect: {str(exc) or type(exc).__name__}", FAILED
    return None


def _crash_line(exc: BaseException) -> str:
    with tempfile.NamedTemporaryFile(
        "w", prefix="flashsale-crash-", suffix=".txt", delete=False
    ) as handle:
        traceback.print_exception(exc, file=handle)
    return f"internal error: {type(exc).__name__}: {exc} (traceback in {handle.name})"


def _say(line: str) -> None:
    print(f"flashsale: {line}", file=sys.stderr, flush=True)


class ToolGroup(TyperGroup):
    """The root group of the ``flashsale`` command: see the module docstring."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except NoArgsIsHelpError:
            code = USAGE  # the help is printed already
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "flashsale"
            _say(f"{exc.format_message()} (see `{where} --help`)")
            code = exc.exit_code
        except ClickException as exc:
            _say(exc.format_message())
            code = exc.exit_code
        except typer.Abort:
            _say("aborted")
            code = FAILED
        except Exception as exc:  # the one place every failure ends
            found = describe(exc)
            line, code = found if found is not None else (_crash_line(exc), FAILED)
            _say(line)
        else:
            code = result if isinstance(result, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)
