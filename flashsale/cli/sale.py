"""``flashsale sale create | tune | status | watch``: ops on sales, straight through the engine.

These commands talk to Redis directly (``FLASHSALE_REDIS_URL``,
``FLASHSALE_NAMESPACE``) with the same Engine the API uses: the same Lua
transitions and validation, no token to mint, no HTTP body limit for a
10,000,000-serial list, and progress as it loads. Remote admins use the HTTP
admin endpoints (``POST/PATCH /v1/sales``) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flashsale.connect import open_engine
from flashsale.engine.engine import Engine
from flashsale.engine.models import Sale, SaleCreate, SaleUpdate
from flashsale.errors import ValidationFailed
from flashsale.settings import config_errors, load_or_exit
from flashsale.text import storable

app = typer.Typer(
    help="Create, tune and watch sales (directly through Redis).", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def run_with_engine(work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run one async piece of work with the configured engine (FLASHSALE_REDIS_URL,
    _NAMESPACE, _REDIS_CLUSTER). Refusals (``sale_not_found``, ...) and an unreachable
    Redis propagate to the command's boundary (cli/boundary.py): one line, exit 1."""
    settings = load_or_exit("FLASHSALE_REDIS_URL")

    async def main() -> T:
        engine = await open_engine(settings, tool=True)
        try:
            return await work(engine)
        finally:
            await engine.aclose()

    with config_errors():
        return asyncio.run(main())


def _storable_serial(raw: bytes, path: Path, number: int) -> str:
    """A serial PostgreSQL can store (UTF-8, no NUL): a bad line is named, nothing created."""
    try:
        serial = raw.decode("utf-8")
    except UnicodeDecodeError:
        serial = "\x00"  # refused below with the same message
    if not storable(serial):
        raise ValidationFailed(f"{path}:{number}: a serial must be UTF-8 text without NUL")
    return serial


def _read_serials(path: Path) -> list[str]:
    """One serial per line (blank lines skipped), with a progress bar for long files."""
    size = path.stat().st_size
    serials: list[str] = []
    with (
        Progress(
            TextColumn("reading serials"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} bytes"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress,
        path.open("rb") as handle,
    ):
        task = progress.add_task("read", total=size)
        for number, line in enumerate(handle, 1):
            serial = line.strip()
            if serial:
                serials.append(_storable_serial(serial, path, number))
            progress.advance(task, len(line))
    return serials


def decode_as(shape: type[T], fields: dict[str, Any]) -> T:
    """Validate exactly as the HTTP API does (JSON round trip into the wire shape)."""
    try:
        return msgspec.json.decode(msgspec.json.encode(fields), type=shape)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc)) from None


SALE_COLUMNS = ("sale", "status", "total", "available", "reserved", "sold", "limit", "window")


def sale_row(sale: Sale) -> tuple[str, ...]:
    end = sale.end_at.isoformat() if sale.end_at else "no end"
    return (
        sale.sale_id,
        sale.status,
        f"{sale.total:,}",
        f"{sale.available:,}",
        f"{sale.reserved:,}",
        f"{sale.sold:,}",
        f"{sale.per_user_limit}/user" + (f", {sale.per_ip_limit}/ip" if sale.per_ip_limit else ""),
        f"{sale.start_at.isoformat()} → {end}",
    )


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, nothing cut (for pipes, files and grep)."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [columns, *rows]
    )


def sale_table(sales: list[Sale]) -> Table:
    table = Table(title="sales" if len(sales) != 1 else f"sale {sales[0].sale_id}")
    widest = max((len(sale.sale_id) for sale in sales), default=4)
    for column in SALE_COLUMNS:
        if column == "sale":  # an id is never cut: the other columns wrap instead
            table.add_column(column, no_wrap=True, min_width=widest)
        else:
            right = column in ("total", "available")
            table.add_column(column, justify="right" if right else "left")
    for sale in sales:
        table.add_row(*sale_row(sale))
    return table


def show_sales(sales: list[Sale]) -> None:
    """A table on a terminal; plain padded lines otherwise (never cut at 80 columns)."""
    if console.is_terminal:
        console.print(sale_table(sales))
    else:
        typer.echo(plain_table(SALE_COLUMNS, [sale_row(sale) for sale in sales]))


def print_json(value: object) -> None:
    typer.echo(msgspec.json.encode(value).decode())


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Display name of the drop.")],
    range_: Annotated[
        tuple[int, int] | None,
        typer.Option("--range", help="Serials LO..HI inclusive, e.g. --range 1 10000."),
    ] = None,
    list_file: Annotated[
        Path | None,
        typer.Option("--list-file", help="File with one explicit serial per line.", exists=True),
    ] = None,
    sale_id: Annotated[
        str | None, typer.Option(help="[A-Za-z0-9_-]{1,64}; generated if absent.")
    ] = None,
    assignment: Annotated[str, typer.Option(help="sequential | random")] = "sequential",
    per_user_limit: Annotated[int, typer.Option(help="Live orders per buyer.")] = 1,
    per_ip_limit: Annotated[int | None, typer.Option(help="Live orders per client IP.")] = None,
    start_at: Annotated[str | None, typer.Option(help="ISO 8601 with zone; default now.")] = None,
    end_at: Annotated[str | None, typer.Option(help="ISO 8601 with zone; default no end.")] = None,
    payment_timeout_s: Annotated[int, typer.Option(help="1 to 86,400 s.")] = 1800,
    price_cents: Annotated[int, typer.Option()] = 0,
    currency: Annotated[str, typer.Option()] = "CNY",
    buckets: Annotated[
        int, typer.Option(help="1 to 16 hash slots for one hot drop (docs/design.md).")
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the sale as JSON.")] = False,
) -> None:
    """Create a sale from a range or a list of serials (progress shown for long lists)."""
    if (range_ is None) == (list_file is None):
        raise ValidationFailed("give exactly one of --range or --list-file")
    if not storable(name):  # argv bytes that are not UTF-8 arrive as lone surrogates
        raise ValidationFailed("--name must be UTF-8 text without NUL")
    serials: dict[str, Any] = (
        {"range": list(range_)} if range_ is not None else {"list": _read_serials(list_file)}  # type: ignore[arg-type]
    )
    fields: dict[str, Any] = {
        "name": name,
        "serials": serials,
        "sale_id": sale_id,
        "assignment": assignment,
        "per_user_limit": per_user_limit,
        "per_ip_limit": per_ip_limit,
        "start_at": start_at,
        "end_at": end_at,
        "payment_timeout_s": payment_timeout_s,
        "price_cents": price_cents,
        "currency": currency,
        "buckets": buckets,
    }
    spec = decode_as(SaleCreate, fields)
    total = spec.serials.size

    async def work(engine: Engine) -> Sale:
        with Progress(
            SpinnerColumn(),
            TextColumn("loading serials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=total <= 20_000,
        ) as progress:
            task = progress.add_task("load", total=total)

            def on_progress(done: int, _total: int) -> None:
                progress.update(task, completed=done)

            sale: Sale = await engine.create_sale(spec, on_progress=on_progress)
            return sale

    sale = run_with_engine(work)
    if json_out:
        print_json(sale)
    else:
        show_sales([sale])


@app.command()
def tune(
    sale_id: Annotated[str, typer.Argument(help="The sale to change.")],
    status: Annotated[str | None, typer.Option(help="open | paused | closed (final).")] = None,
    end_at: Annotated[str | None, typer.Option(help="New end, ISO 8601 with zone.")] = None,
    per_user_limit: Annotated[int | None, typer.Option()] = None,
    per_ip_limit: Annotated[int | None, typer.Option(help="0 turns the per-IP limit off.")] = None,
    payment_timeout_s: Annotated[int | None, typer.Option(help="Applies to new orders.")] = None,
    add_range: Annotated[tuple[int, int] | None, typer.Option(help="Add serials LO..HI.")] = None,
    add_list_file: Annotated[
        Path | None, typer.Option(help="Add the serials listed in this file.", exists=True)
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the sale as JSON.")] = False,
) -> None:
    """Tune a live sale: pause, resume, close, end time, limits, timeout, more serials."""
    fields: dict[str, Any] = {}
    if status is not None:
        fields["status"] = status
    if end_at is not None:
        fields["end_at"] = end_at
    if per_user_limit is not None:
        fields["per_user_limit"] = per_user_limit
    if per_ip_limit is not None:
        fields["per_ip_limit"] = per_ip_limit or None
    if payment_timeout_s is not None:
        fields["payment_timeout_s"] = payment_timeout_s
    if add_range is not None:
        fields["add_serials"] = {"range": list(add_range)}
    elif add_list_file is not None:
        fields["add_serials"] = {"list": _read_serials(add_list_file)}
    if not fields:
        raise ValidationFailed("nothing to change: give at least one option")
    update = decode_as(SaleUpdate, fields)

    async def work(engine: Engine) -> Sale:
        sale: Sale = await engine.tune(sale_id, update, actor="cli")
        return sale

    sale = run_with_engine(work)
    if json_out:
        print_json(sale)
    else:
        show_sales([sale])


@app.command()
def status(
    sale_id: Annotated[str | None, typer.Argument(help="One sale; all sales when omitted.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a sale (or every sale): status, total, available, reserved, sold."""

    async def work(engine: Engine) -> list[Sale]:
        ids = [sale_id] if sale_id else await engine.sale_ids()
        return [await engine.get_sale(i) for i in ids]

    sales = run_with_engine(work)
    if json_out:
        print_json(sales[0] if sale_id else sales)
    else:
        show_sales(sales)


class WatchSample(msgspec.Struct, kw_only=True):
    at: float
    sale: Sale
    stats: dict[str, int]
    lag: int


async def sample(engine: Engine, sale_id: str) -> WatchSample:
    from flashsale.api.lag import stream_lags
    from flashsale.api.state import stats_key

    sale: Sale = await engine.get_sale(sale_id)
    raw = await engine.redis.hgetall(stats_key(engine.namespace, sale_id))
    stats = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
    lags = await stream_lags(engine, [sale_id])
    return WatchSample(at=time.monotonic(), sale=sale, stats=stats, lag=lags.get(sale_id, 0))


Previous = WatchSample | None


class Rates:
    """Per-second rates of the outcome counters between two samples."""

    def __init__(self, now: WatchSample, before: WatchSample | None) -> None:
        self.now, self.before = now, before
        self.elapsed = (now.at - before.at) if before else 0.0

    def of(self, field: str) -> float | None:
        if self.before is None or self.elapsed <= 0:
            return None
        return (self.now.stats.get(field, 0) - self.before.stats.get(field, 0)) / self.elapsed

    def text(self, field: str) -> str:
        value = self.of(field)
        return "–" if value is None else f"{value:,.1f}/s"


def rejection_codes(sample: WatchSample) -> list[str]:
    return sorted(key[4:] for key in sample.stats if key.startswith("rej:"))


def watch_view(now: WatchSample, before: WatchSample | None) -> Group:
    sale = now.sale
    rates = Rates(now, before)
    head = Table.grid(padding=(0, 3))
    for _ in range(4):
        head.add_column()
    head.add_row("status", f"[bold]{sale.status}[/bold]", "total", f"{sale.total:,}")
    head.add_row("available", f"[green]{sale.available:,}[/green]", "sold", f"{sale.sold:,}")
    head.add_row("reserved", f"{sale.reserved:,}", "write-behind lag", f"{now.lag:,} events")
    head.add_row(
        "purchases",
        f"{now.stats.get('created', 0):,} ({rates.text('created')})",
        "replays",
        f"{now.stats.get('replayed', 0):,}",
    )
    rejections = Table(title="rejections by code", expand=False)
    rejections.add_column("code")
    rejections.add_column("count", justify="right")
    rejections.add_column("rate", justify="right")
    codes = rejection_codes(now)
    for code in codes:
        rejections.add_row(code, f"{now.stats['rej:' + code]:,}", rates.text("rej:" + code))
    if not codes:
        rejections.add_row("–", "0", "–")
    return Group(Panel(head, title=f"sale {sale.sale_id} · {sale.name}"), rejections)


def watch_line(now: WatchSample, before: WatchSample | None) -> str:
    """One plain line per sample (stdout is not a terminal: a pipe, a file, a log)."""
    sale = now.sale
    rates = Rates(now, before)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rejected = (
        " ".join(f"{code}={now.stats['rej:' + code]}" for code in rejection_codes(now)) or "none"
    )
    return (
        f"{stamp} sale={sale.sale_id} status={sale.status} available={sale.available} "
        f"reserved={sale.reserved} sold={sale.sold} total={sale.total} "
        f"purchases={now.stats.get('created', 0)} rate={rates.text('created')} "
        f"replays={now.stats.get('replayed', 0)} lag={now.lag} rejected: {rejected}"
    )


def watch_json(now: WatchSample, before: WatchSample | None) -> str:
    rates = Rates(now, before)
    record = {
        "at": datetime.now(UTC).isoformat(),
        "sale": msgspec.to_builtins(now.sale),
        "purchases": now.stats.get("created", 0),
        "purchases_per_s": rates.of("created"),
        "replays": now.stats.get("replayed", 0),
        "rejections": {code: now.stats["rej:" + code] for code in rejection_codes(now)},
        "lag": now.lag,
    }
    return msgspec.json.encode(record).decode()


@app.command()
def watch(
    sale_id: Annotated[str, typer.Argument(help="The sale to watch.")],
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    iterations: Annotated[int, typer.Option(help="Stop after N refreshes (0: until Ctrl-C).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per sample.")] = False,
) -> None:
    """Live view of a sale: available, sold, purchase rate, rejections by code, lag.

    Purchase outcomes are counted by every API worker and added to Redis once a
    second, so the view covers all workers of all servers. On a terminal the view
    refreshes in place; otherwise (a pipe, a file) each sample is one plain line,
    or one JSON object with --json.
    """
    live = console.is_terminal and not json_out
    line = watch_json if json_out else watch_line

    async def samples(engine: Engine, show: Callable[[WatchSample, Previous], None]) -> None:
        before: WatchSample | None = None
        count = 0
        while True:
            now = await sample(engine, sale_id)
            show(now, before)
            before = now
            count += 1
            if iterations and count >= iterations:
                return
            await asyncio.sleep(interval)

    async def work(engine: Engine) -> None:
        if live:
            with Live(console=console, refresh_per_second=4, transient=False) as view:
                await samples(engine, lambda now, before: view.update(watch_view(now, before)))
        else:
            await samples(engine, lambda now, before: typer.echo(line(now, before)))

    with contextlib.suppress(KeyboardInterrupt):
        run_with_engine(work)
