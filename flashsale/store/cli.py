"""CLI of the store: ``persist``, ``db upgrade``, ``audit SALE``, ``recover``.

Mount with ``register(app)`` on the ``flashsale`` typer app (adds the three
commands and the ``db`` group), or use the plain async functions. Everything is
configured by the ``Settings`` (flashsale/settings.py): FLASHSALE_REDIS_URL,
FLASHSALE_REDIS_CLUSTER, FLASHSALE_DATABASE_URL, FLASHSALE_NAMESPACE, and
FLASHSALE_PERSIST_* for the consumer's knobs. On a Redis Cluster ``recover``
checks and rewrites each master's AOF, then audits every sale.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Annotated

import msgspec
import typer

from flashsale import logs
from flashsale.connect import need, open_engine, open_pool, open_redis
from flashsale.engine.errors import SaleNotFound
from flashsale.settings import Settings, config_errors, load_or_exit
from flashsale.store import migrate
from flashsale.store.audit import AuditReport, audit_sale, render
from flashsale.store.persist import PersistConfig, Persister, consumer_name
from flashsale.store.recover import RecoverReport, recover
from flashsale.telemetry.exporter import export
from flashsale.telemetry.workers import PERSIST

log = logging.getLogger("flashsale.store")

NEEDS = ("FLASHSALE_REDIS_URL", "FLASHSALE_DATABASE_URL")


async def db_upgrade(database_url: str) -> list[int]:
    done: list[int] = await migrate.upgrade(database_url)
    return done


async def redis_upgrade(settings: Settings) -> tuple[int, int]:
    """Move every sale's orders still in the form before packed records (docs/design.md,
    "Packed orders"); (sales touched, orders moved). Idempotent."""
    engine = await open_engine(settings, tool=True)
    sales = moved = 0
    try:
        for sale_id in await engine.sale_ids():
            n = await engine.upgrade_orders(sale_id)
            sales, moved = sales + (n > 0), moved + n
    finally:
        await engine.aclose()
    return sales, moved


async def run_persist(
    settings: Settings,
    *,
    consumers: int = 1,
    config: PersistConfig | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``consumers`` write-behind consumers until SIGTERM/SIGINT (or ``stop``)."""
    settings.require(*NEEDS)
    redis = await open_redis(settings)  # a RedisCluster when FLASHSALE_REDIS_CLUSTER=1
    pool = await open_pool(settings, max_size=consumers + 1)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cfg = config or settings.persist
    namespace = settings.redis.namespace
    base = consumer_name()
    workers = [
        Persister(redis, pool, namespace=namespace, consumer=f"{base}-{i}", config=cfg)
        for i in range(consumers)
    ]
    log.info("persist: %d consumer(s) %s, namespace %s", consumers, base, namespace)
    try:
        with PERSIST.watching(*(w.stats for w in workers)):
            await asyncio.gather(*(w.run(stop) for w in workers))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await pool.close()
        await redis.aclose()


async def run_audit(settings: Settings, sale_id: str, *, deep: bool = True) -> AuditReport:
    settings.require(*NEEDS)
    redis = await open_redis(settings)
    pool = await open_pool(settings, max_size=2)
    try:
        return await audit_sale(redis, pool, settings.redis.namespace, sale_id, deep=deep)
    finally:
        await pool.close()
        await redis.aclose()


async def run_recover(
    settings: Settings, *, force_rewrite: bool = False, deep: bool = True
) -> RecoverReport:
    settings.require(*NEEDS)
    engine = await open_engine(settings, tool=True)
    pool = await open_pool(settings, max_size=2)
    try:
        return await recover(engine, pool, force_rewrite=force_rewrite, deep=deep)
    finally:
        await pool.close()
        await engine.aclose()


def render_recovery(report: RecoverReport) -> str:
    """A human-readable recovery report (the CLI prints it unless --json)."""
    aof = report.aof
    truncated = {True: "truncated", False: "complete", None: "unknown"}[aof.truncated]
    lines = [
        f"recover: {'OK' if report.ok else 'VIOLATIONS'} ({report.duration_ms} ms)",
        f"  aof       enabled={aof.aof_enabled} load={truncated} rewritten={report.rewritten}",
    ]
    lines += [f"      {evidence}" for evidence in aof.evidence]
    if len(report.nodes) > 1:
        for node in report.nodes:
            state = {True: "truncated", False: "complete", None: "unknown"}[node.aof.truncated]
            lines.append(
                f"  node {node.node}: aof enabled={node.aof.aof_enabled} load={state} "
                f"rewritten={node.rewritten}"
            )
    for sale in report.sales:
        state = "reopened" if sale.reopened else ("left closed" if sale.was_open else "as it was")
        lines.append(f"  sale {sale.sale_id}: {'ok' if sale.ok else 'VIOLATIONS'}, {state}")
        lines += [f"    VIOLATION {violation}" for violation in sale.violations]
    return "\n".join(lines)


# -- typer -------------------------------------------------------------------------------

app = typer.Typer(help="Write-behind, migrations, audit and recovery.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Apply pending migrations (idempotent; safe from two processes at once); with
    FLASHSALE_REDIS_URL set, also move Redis orders still in the old form to packed records
    (run it before starting the new version's servers)."""
    with config_errors():
        settings = Settings.from_env()
        url = need(settings.database.url, "FLASHSALE_DATABASE_URL")
        done = asyncio.run(db_upgrade(url))
        typer.echo(f"applied {', '.join(f'{v:04d}' for v in done)}" if done else "up to date")
        if settings.redis.url:
            sales, moved = asyncio.run(redis_upgrade(settings))
            if moved:
                typer.echo(f"redis: {moved} orders of {sales} sales moved to packed records")


def persist_command(
    consumers: Annotated[int, typer.Option(min=1, max=64, help="consumers in this process")] = 1,
) -> None:
    """Run the write-behind (Redis streams -> PostgreSQL) until SIGTERM."""
    settings = load_or_exit(*NEEDS, secrets=True)
    logs.configure("persist", settings.log_format)
    with config_errors():
        metrics = settings.metrics
        export(metrics.persist_port, metrics.host, "FLASHSALE_PERSIST_METRICS_PORT", PERSIST)
        asyncio.run(run_persist(settings, consumers=consumers))


def audit_command(
    sale_id: str,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON report")] = False,
    quick: Annotated[bool, typer.Option(help="counters and aggregates only")] = False,
) -> None:
    """Check every invariant of a sale across Redis and PostgreSQL; exit 1 on a violation."""
    settings = load_or_exit(*NEEDS)
    with config_errors():
        report = asyncio.run(run_audit(settings, sale_id, deep=not quick))
    if any(v.code == "sale_not_found" for v in report.violations):
        raise SaleNotFound(f"no sale {sale_id} in Redis nor in PostgreSQL")  # a typo, not a report
    typer.echo(msgspec.json.encode(report).decode() if json_out else render(report))
    if not report.ok:
        raise typer.Exit(1)


def recover_command(
    force_rewrite: Annotated[bool, typer.Option(help="BGREWRITEAOF even if not truncated")] = False,
    quick: Annotated[bool, typer.Option(help="audit counters and aggregates only")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON report")] = False,
) -> None:
    """After a Redis restart: detect a truncated AOF, rewrite it, audit, then reopen sales."""
    settings = load_or_exit(*NEEDS)
    with config_errors():
        report = asyncio.run(run_recover(settings, force_rewrite=force_rewrite, deep=not quick))
    typer.echo(msgspec.json.encode(report).decode() if json_out else render_recovery(report))
    if not report.ok:
        raise typer.Exit(1)


app.command("persist")(persist_command)
app.command("audit")(audit_command)
app.command("recover")(recover_command)
app.add_typer(db_app, name="db")


def register(main: typer.Typer) -> None:
    """Mount ``persist``, ``audit``, ``recover`` and the ``db`` group on the main CLI."""
    main.command("persist")(persist_command)
    main.command("audit")(audit_command)
    main.command("recover")(recover_command)
    main.add_typer(db_app, name="db")


if __name__ == "__main__":
    app()
    sys.exit(0)
