"""``flashsale admin ...``: the admin desk from a shell, straight to Redis and PostgreSQL.

The same listings and password actions as ``/v1/admin/...`` (api/routes/admin.py),
through the same functions (store/admin.py, payments/wallet.py,
payments/passwords.py). Lists print one padded line per row (``--json``: the
API's JSON) and, while more remain, the ``--cursor`` of the next page. A password
action records who (``--actor``, default ``cli:<login>``), when and why (``--reason``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import asyncpg
import typer

from flashsale.cli.sale import decode_as, plain_table, print_json
from flashsale.connect import open_engine, open_pool
from flashsale.engine.engine import Engine
from flashsale.engine.models import Order
from flashsale.engine.statuses import OrderStatus
from flashsale.payments import wallet
from flashsale.payments.models import PasswordDeskAction, PasswordState
from flashsale.payments.passwords import Passwords
from flashsale.settings import config_errors, load_or_exit
from flashsale.store import admin as listings
from flashsale.store.paging import MAX_LIMIT

app = typer.Typer(
    help="The admin desk: sales, orders, a serial's history, ledgers, payment passwords.",
    no_args_is_help=True,
)
T = TypeVar("T")
NEEDS = ("FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL")

JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON (as the API answers).")]
Limit = Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="Rows per page.")]
Cursor = Annotated[str | None, typer.Option(help="The next page, as the last one said.")]
Reason = Annotated[str, typer.Option(help="Why (kept in the trail with who and when).")]
Actor = Annotated[str | None, typer.Option(help="Who (default: cli:<your login>).")]


@dataclass(frozen=True)
class Desk:
    engine: Engine
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def _desk() -> AsyncIterator[Desk]:
    settings = load_or_exit(*NEEDS)
    async with contextlib.AsyncExitStack() as stack:
        engine = await open_engine(settings, tool=True)
        stack.push_async_callback(engine.aclose)
        pool = await open_pool(settings, max_size=2)
        stack.push_async_callback(pool.close)
        yield Desk(engine, pool)


def _run(work: Callable[[Desk], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _desk() as desk:
            return await work(desk)

    with config_errors():
        return asyncio.run(main())


def _next_page(cursor: str | None) -> None:
    if cursor:
        typer.echo(f"more: --cursor {cursor}")


def _order_rows(orders: list[Order]) -> str:
    columns = ("order", "status", "serial", "buyer", "price", "created", "payment")
    rows = [
        (
            o.order_id,
            o.status,
            str(o.serial),
            o.user_id,
            f"{o.price_cents / 100:,.2f} {o.currency}",
            o.created_at.isoformat(timespec="seconds"),
            o.payment_id or "-",
        )
        for o in orders
    ]
    return plain_table(columns, rows)


@app.command("sales")
def sales(limit: Limit = 50, cursor: Cursor = None, json_out: JsonOut = False) -> None:
    """Every sale, newest first, with its live counters."""

    async def work(desk: Desk) -> Any:
        return await listings.list_sales(desk.pool, desk.engine, limit=limit, cursor=cursor)

    page = _run(work)
    if json_out:
        print_json({"items": page.items, "next_cursor": page.next_cursor})
        return

    def count(value: int | None) -> str:
        return "?" if value is None else f"{value:,}"

    columns = ("sale", "status", "total", "available", "reserved", "sold", "created")
    rows = [
        (
            s.sale_id,
            s.status + ("" if s.in_redis else " (not in Redis)"),
            f"{s.total:,}",
            count(s.available),
            count(s.reserved),
            count(s.sold),
            s.created_at.isoformat(timespec="seconds"),
        )
        for s in page.items
    ]
    typer.echo(plain_table(columns, rows))
    _next_page(page.next_cursor)


@app.command("orders")
def orders(
    sale_id: Annotated[str, typer.Argument(help="The sale.")],
    status: Annotated[OrderStatus | None, typer.Option(help="Only orders in this status.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    json_out: JsonOut = False,
) -> None:
    """A sale's orders as persisted in PostgreSQL, newest first."""

    async def work(desk: Desk) -> Any:
        await desk.engine.get_sale(sale_id)  # sale_not_found for a typo
        return await listings.sale_orders(
            desk.pool, sale_id, status=status, limit=limit, cursor=cursor
        )

    page = _run(work)
    if json_out:
        print_json({"items": page.items, "next_cursor": page.next_cursor})
        return
    typer.echo(_order_rows(page.items))
    _next_page(page.next_cursor)


@app.command("serial")
def serial(
    sale_id: Annotated[str, typer.Argument(help="The sale.")],
    serial_: Annotated[str, typer.Argument(metavar="SERIAL", help="The serial.")],
    json_out: JsonOut = False,
) -> None:
    """Every order that held a serial, newest (the live one, if any) first."""

    async def work(desk: Desk) -> list[Order]:
        await desk.engine.get_sale(sale_id)
        return await listings.orders_by_serial(desk.pool, sale_id, serial_)

    found = _run(work)
    if json_out:
        print_json(found)
    elif found:
        typer.echo(_order_rows(found))
    else:
        typer.echo(f"no order ever held serial {serial_} of sale {sale_id}")


@app.command("ledger")
def ledger(
    user_id: Annotated[str, typer.Argument(help="The buyer (token sub).")],
    currency: Annotated[str | None, typer.Option(help="Only this currency.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    json_out: JsonOut = False,
) -> None:
    """A buyer's balances and coins, and the movements of both, latest first."""

    async def work(desk: Desk) -> Any:
        return await wallet.ledger(
            desk.pool, user_id, currency=currency, limit=limit, cursor=cursor
        )

    found = _run(work)
    if json_out:
        print_json(found)
        return
    balances = ", ".join(
        f"{b.balance_cents / 100:,.2f} {b.currency}"
        + (f" + {b.coins_cents / 100:,.2f} coins" if b.coins_cents else "")
        for b in found.balances
    )
    typer.echo(f"buyer {user_id}: {balances or 'no wallet'}")
    columns = ("entry", "when", "ledger", "kind", "amount", "balance after", "actor", "reason")
    rows = [
        (
            str(e.entry_id),
            e.created_at.isoformat(timespec="seconds"),
            e.ledger,
            e.kind,
            f"{e.amount_cents / 100:+,.2f} {e.currency}",
            f"{e.balance_after_cents / 100:,.2f}",
            e.actor or "-",
            e.reason,
        )
        for e in found.entries
    ]
    if rows:
        typer.echo(plain_table(columns, rows))
    _next_page(found.next_cursor)


def _show_password(state: PasswordState, json_out: bool) -> None:
    if json_out:
        print_json(state)
        return
    if not state.set:
        summary = "no payment password (the buyer sets one without an old password)"
    elif state.locked:
        summary = f"locked until {state.locked_until} after {state.failed_attempts} wrong attempts"
    else:
        summary = f"set, {state.failed_attempts} wrong attempts since the last right one"
    typer.echo(f"payment password of {state.user_id}: {summary}")
    for action in state.actions:
        typer.echo(
            f"  {action.at.isoformat(timespec='seconds')}  {action.action:<6}  "
            f"by {action.actor}: {action.reason}"
        )


def _who_and_why(actor: str | None, reason: str) -> tuple[str, str]:
    """The trail's actor and reason, validated as the API validates them."""
    why = decode_as(PasswordDeskAction, {"reason": reason}).reason
    return actor or f"cli:{getpass.getuser()}", why


def _passwords(desk: Desk) -> Passwords:
    return Passwords(desk.pool)


@app.command("password")
def password(
    user_id: Annotated[str, typer.Argument(help="The buyer.")], json_out: JsonOut = False
) -> None:
    """A buyer's payment password: set or not, locked or not, and the admins' actions on it."""
    _show_password(_run(lambda desk: _passwords(desk).state(user_id)), json_out)


@app.command("unlock-password")
def unlock_password(
    user_id: Annotated[str, typer.Argument(help="The buyer.")],
    reason: Reason,
    actor: Actor = None,
    json_out: JsonOut = False,
) -> None:
    """Clear a buyer's wrong attempts and lock (the password itself stays)."""
    who, why = _who_and_why(actor, reason)
    _show_password(_run(lambda desk: _passwords(desk).unlock(user_id, who, why)), json_out)


@app.command("reset-password")
def reset_password(
    user_id: Annotated[str, typer.Argument(help="The buyer.")],
    reason: Reason,
    actor: Actor = None,
    json_out: JsonOut = False,
) -> None:
    """Forget a buyer's payment password: they set a new one without the old.

    Only once you made sure, out of band, that the buyer asks for it.
    """
    who, why = _who_and_why(actor, reason)
    _show_password(_run(lambda desk: _passwords(desk).reset(user_id, who, why)), json_out)
