"""`flashsale demo`: a whole drop on one machine, start to finish.

It runs in dev mode (FLASHSALE_ENV=dev: development secrets unless set).
With neither FLASHSALE_REDIS_URL nor FLASHSALE_DATABASE_URL set it starts
private embedded Redis and PostgreSQL servers (removed afterwards), migrates,
starts the server with its write-behind and timers (and the payment
simulator, and a local chain with the deliverer unless FLASHSALE_CHAIN_URL is
set), fires a burst of purchases from thousands of buyers, pays part of the
orders by provider (with lost and duplicated callbacks switched on) and part by
balance, lets the rest expire, mints the paid orders' tokens to the buyers'
addresses (read back from the chain), and ends with the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from flashsale.api.tokens import mint_token
from flashsale.connect import need
from flashsale.devservers import ChildProcess, embedded_stack, free_port, install_signal_handlers
from flashsale.devservers.chain import EmbeddedChain
from flashsale.loadtest.burst import BurstResult, burst
from flashsale.loadtest.demo_delivery import DeliveryOutcome, deliver_paid
from flashsale.loadtest.demo_payments import PaymentOutcome, pay_some
from flashsale.loadtest.histogram import buckets, quantile
from flashsale.settings import Settings, config_errors


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """Environment for the server, in dev mode: the configured services, or embedded ones."""
    env = {**os.environ, "FLASHSALE_ENV": "dev"}
    settings = Settings.from_env(env)
    with local_chain(env):
        if settings.redis.url or settings.database.url:
            yield env
            return
        install_signal_handlers()
        print("starting embedded Redis and PostgreSQL ...", flush=True)
        with embedded_stack() as (redis_url, database_url):
            env |= {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
            yield env


@contextlib.contextmanager
def local_chain(env: dict[str, str]) -> Iterator[None]:
    """A local development chain unless FLASHSALE_CHAIN_URL names one (the demo reads
    tokens back from it, so it starts the node itself rather than the supervisor)."""
    if env.get("FLASHSALE_CHAIN_URL"):
        yield
        return
    print("starting a local chain (hardhat) ...", flush=True)
    with EmbeddedChain() as node:
        env |= {"FLASHSALE_CHAIN_URL": node.url, "FLASHSALE_CHAIN_KEY": node.dev_key}
        yield


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashsale.cli.main", *args]


def server(env: dict[str, str], port: int) -> ChildProcess:
    """``flashsale serve --with-workers``, ready once /health answers."""
    command = _cli("serve", "--host", "127.0.0.1", "--port", str(port), "--with-workers")
    return ChildProcess(command, env=env, ready_url=f"http://127.0.0.1:{port}/health")


def paysim(env: dict[str, str]) -> ChildProcess:
    """The provider simulator, with a fast callback retry schedule for the demo."""
    url = env["FLASHSALE_PAYSIM_URL"]
    command = _cli("paysim", "--port", url.rpartition(":")[2], "--fast-retries")
    return ChildProcess(command, env=env, ready_url=f"{url}/health")


async def wait_for_audit(
    client: httpx.AsyncClient, sale_id: str, admin: str, seconds: float
) -> dict[str, Any]:
    """Poll the audit until the write-behind has drained and nothing is pending."""
    deadline = time.monotonic() + seconds
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(
            f"/v1/sales/{sale_id}/audit", headers={"Authorization": f"Bearer {admin}"}
        )
        report = response.json()
        sale = (await client.get(f"/v1/sales/{sale_id}")).json()
        if report.get("lag") == 0 and report.get("ok") and sale.get("reserved") == 0:
            return report
        await asyncio.sleep(0.5)
    return report


def print_purchases(result: BurstResult, buyers: int) -> None:
    rate = result.attempts / result.seconds if result.seconds else 0.0
    refused = " · ".join(f"{code} {n:,}" for code, n in result.refused.most_common())
    print(
        f"\npurchases: {result.attempts:,} attempts from {buyers:,} buyers in "
        f"{result.seconds:.2f} s ({rate:,.0f} req/s)"
    )
    print(f"  sold        {len(result.sold):,}")
    print(f"  rejected    {sum(result.refused.values()):,}: {refused or 'none'}")
    print(
        f"  clients saw p50 {result.percentile(50):.1f} ms · p99 {result.percentile(99):.1f} ms "
        "(one Python process: includes waiting for one of its 500 connections)"
    )


async def drive(
    base_url: str, env: dict[str, str], buyers: int, attempts: int, serials: int
) -> bool:
    settings = Settings.from_env(env)
    secret = settings.checked_jwt_secret()
    admin = mint_token(secret, "ops", admin=True)
    tokens = {f"buyer-{i:05d}": mint_token(secret, f"buyer-{i:05d}") for i in range(buyers)}
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        sale_id = f"demo-{secrets.token_hex(3)}"
        created = await client.post(
            "/v1/sales",
            json={
                "sale_id": sale_id,
                "name": "Genesis drop (demo)",
                "serials": {"range": [1, serials]},
                "assignment": "random",
                "per_user_limit": 1,
                "payment_timeout_s": 60,
                "price_cents": 9900,
                "currency": "CNY",
            },
            headers={"Authorization": f"Bearer {admin}"},
        )
        created.raise_for_status()
        print(
            f"drop {sale_id}: {serials:,} serials, random assignment, 1 per buyer, "
            f"commitment {created.json()['assignment_commitment'][:16]}…"
        )

        result = await burst(client, sale_id, tokens, attempts)
        print_purchases(result, buyers)
        inside = buckets((await client.get("/metrics")).text, "flashsale_purchase_seconds")
        p50, p99 = quantile(inside, 0.5), quantile(inside, 0.99)
        if p50 is not None and p99 is not None:
            print(
                f"  in the server p50 {p50 * 1000:.1f} ms · p99 {p99 * 1000:.1f} ms "
                "(the workers' own histogram: token, engine round trip, response)"
            )

        outcome: PaymentOutcome = await pay_some(
            client,
            need(settings.payments.paysim_url, "FLASHSALE_PAYSIM_URL"),
            result,
            tokens,
            admin,
        )
        print(outcome.summary())
        delivery: DeliveryOutcome = await deliver_paid(
            client,
            need(settings.chain.url, "FLASHSALE_CHAIN_URL"),
            sale_id,
            result.sold,
            outcome.statuses,
            tokens,
        )
        print(delivery.summary())
        client_violations = result.violations(1, outcome.statuses)
        print(
            "  clients saw "
            + (
                "no serial in two live orders, no buyer over the limit"
                if not client_violations
                else f"{len(client_violations)} problems"
            )
        )

        report = await wait_for_audit(client, sale_id, admin, seconds=120)
        sale = (await client.get(f"/v1/sales/{sale_id}")).json()
        print(
            f"\nsale:       sold {sale['sold']:,} · reserved {sale['reserved']:,} · "
            f"available {sale['available']:,} of {sale['total']:,}"
        )
        print(
            f"write-behind: {report.get('persisted', '?')} orders in PostgreSQL, "
            f"lag {report.get('lag', '?')}"
        )
        violations = report.get("violations", ["audit did not answer"])
        print(
            f"audit:      {'ok' if report.get('ok') else 'FAILED'} ({len(violations)} violations)"
        )
        for violation in [*violations, *client_violations]:
            print(f"VIOLATION: {violation}")
        ok = bool(report.get("ok")) and not client_violations and outcome.ok and delivery.ok
        print(f"\nverdict: {'PASS' if ok else 'FAIL'}")
        return ok


def main(buyers: int = 2000, attempts: int = 5000, serials: int = 1000) -> int:
    with config_errors(), services() as env:
        env.setdefault("FLASHSALE_JWT_SECRET", Settings.from_env(env).checked_jwt_secret())
        subprocess.run(_cli("db", "upgrade"), env=env, check=True)
        env["FLASHSALE_PAYSIM_URL"] = f"http://127.0.0.1:{free_port()}"
        port = free_port()
        with paysim(env), server(env, port):
            ok = asyncio.run(drive(f"http://127.0.0.1:{port}", env, buyers, attempts, serials))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
