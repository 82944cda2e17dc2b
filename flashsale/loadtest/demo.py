"""`flashsale demo`: a whole drop on one machine, start to finish, told as a short story.

It runs in dev mode (FLASHSALE_ENV=dev: development secrets unless set).
With neither FLASHSALE_REDIS_URL nor FLASHSALE_DATABASE_URL set it starts
private embedded Redis and PostgreSQL servers (removed afterwards), migrates,
starts the server with its write-behind and timers (and the payment
simulator, and a local chain with the deliverer unless FLASHSALE_CHAIN_URL is
set), fires a burst of purchases from thousands of buyers through the load test's
generator (demo_burst.py: locust users released together at the drop's opening), pays part of the
orders by provider (with lost and duplicated callbacks switched on) and part by
balance, lets the rest expire, mints the paid orders' tokens to the buyers'
addresses (read back from the chain), buys a cart of two merchants' drops with
coins and the balance through its parent bill and one buy again (demo_orders.py),
and ends with the audit.

The terminal gets the story (steps, a progress bar for each long one, the
results, the server's own figures); everything the servers log goes to the
file named at the start (``loadtest/reports/demo-<time>/servers.log``).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from flashsale.api.tokens import mint_token
from flashsale.connect import need
from flashsale.devservers import ChildProcess, embedded_stack, free_port, install_signal_handlers
from flashsale.devservers.chain import EmbeddedChain
from flashsale.loadtest.demo_aftersales import approve_one
from flashsale.loadtest.demo_burst import RUN, Burst, burst_locust, burst_options, read_burst
from flashsale.loadtest.demo_delivery import DeliveryOutcome, deliver_paid
from flashsale.loadtest.demo_orders import OrdersOutcome, cart_story
from flashsale.loadtest.demo_payments import (
    CLIENT_TIMEOUT,
    PaymentOutcome,
    client_limits,
    pay_some,
)
from flashsale.loadtest.histogram import buckets, quantile
from flashsale.loadtest.options import REPORTS
from flashsale.loadtest.runner import opening
from flashsale.loadtest.seen import epoch_of
from flashsale.loadtest.story import Story
from flashsale.settings import Settings, config_errors

STEPS = 9
CLIENT_CONNECTIONS = 500  # of the demo's own client (payments, read-backs), after the burst
CLUSTER_BUCKETS = 3  # the hot drop of `demo --cluster`: one bucket per master
PRICE_CENTS = 9900


@contextlib.contextmanager
def services(story: Story, *, cluster: bool = False) -> Iterator[dict[str, str]]:
    """Environment for the server, in dev mode: the configured services, or embedded ones
    (``cluster``: a 3-master Redis Cluster, every process told so)."""
    env = {**os.environ, "FLASHSALE_ENV": "dev"}
    if cluster:
        env["FLASHSALE_REDIS_CLUSTER"] = "1"
    settings = Settings.from_env(env)
    install_signal_handlers()
    with contextlib.ExitStack() as stack:
        stack.enter_context(local_chain(story, env))
        if settings.redis.url or settings.database.url:
            story.say("(using the Redis and PostgreSQL of FLASHSALE_REDIS_URL / _DATABASE_URL)")
        else:
            redis = "a private 3-master Redis Cluster" if cluster else "private Redis"
            with story.step(f"starting {redis} and PostgreSQL (removed at the end)"):
                redis_url, database_url = stack.enter_context(embedded_stack(cluster=cluster))
            env |= {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
        yield env


@contextlib.contextmanager
def local_chain(story: Story, env: dict[str, str]) -> Iterator[None]:
    """A local development chain unless FLASHSALE_CHAIN_URL names one (the demo reads
    tokens back from it, so it starts the node itself rather than the supervisor)."""
    if env.get("FLASHSALE_CHAIN_URL"):
        story.say("(using the chain of FLASHSALE_CHAIN_URL)")
        yield
        return
    with contextlib.ExitStack() as stack:
        with story.step("starting a local EVM chain (hardhat, from the project's npm files)"):
            node = stack.enter_context(EmbeddedChain())
        env |= {"FLASHSALE_CHAIN_URL": node.url, "FLASHSALE_CHAIN_KEY": node.dev_key}
        yield


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flashsale.cli.main", *args]


def server(env: dict[str, str], port: int, log: Path) -> ChildProcess:
    """``flashsale serve --with-workers``, ready once /health answers."""
    command = _cli("serve", "--host", "127.0.0.1", "--port", str(port), "--with-workers")
    return ChildProcess(command, env=env, log=log, ready_url=f"http://127.0.0.1:{port}/health")


def paysim(env: dict[str, str], log: Path) -> ChildProcess:
    """The provider simulator, with a fast callback retry schedule for the demo."""
    url = env["FLASHSALE_PAYSIM_URL"]
    command = _cli("paysim", "--port", url.rpartition(":")[2], "--fast-retries")
    return ChildProcess(command, env=env, log=log, ready_url=f"{url}/health")


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


def tell_purchases(story: Story, burst: Burst, buyers: int, metrics: str) -> None:
    """The server's own figures first (its workers' histogram), then the clients' as the
    load test prints them."""
    result = burst.result
    refused = " · ".join(f"{code} {n:,}" for code, n in result.refused.most_common())
    story.result(
        f"sold {len(result.sold):,} · refused {sum(result.refused.values()):,} "
        f"({refused or 'none'}) · {result.attempts:,} attempts from {buyers:,} buyers"
    )
    inside = buckets(metrics, "flashsale_purchase_seconds")
    p50, p99 = quantile(inside, 0.5), quantile(inside, 0.99)
    if p50 is not None and p99 is not None:
        story.result(
            f"the server: each purchase took p50 {p50 * 1000:.1f} ms · p99 {p99 * 1000:.1f} ms "
            "inside a worker (token, one Redis round trip, answer)"
        )
    for line in burst.lines():
        story.result(line)


def drop_body(sale_id: str, serials: int, payment_timeout_s: int, slots: int) -> dict[str, Any]:
    """The demo's hot drop; ``slots`` > 1 spreads it over that many hash slots."""
    body: dict[str, Any] = {
        "sale_id": sale_id,
        "name": "Genesis drop (demo)",
        "serials": {"range": [1, serials]},
        "assignment": "random",
        "per_user_limit": 1,
        "payment_timeout_s": payment_timeout_s,
        "price_cents": PRICE_CENTS,
        "currency": "CNY",
    }
    if slots > 1:
        body["buckets"] = slots
    return body


async def drive(
    story: Story,
    base_url: str,
    env: dict[str, str],
    buyers: int,
    attempts: int,
    serials: int,
    payment_timeout_s: int,
    processes: int,
    run_dir: Path,
    slots: int = 1,
) -> bool:
    settings = Settings.from_env(env)
    secret = settings.checked_jwt_secret()
    admin = mint_token(secret, "ops", admin=True)
    opts = burst_options(base_url, buyers, serials, processes, run_dir)
    async with httpx.AsyncClient(
        base_url=base_url, limits=client_limits(CLIENT_CONNECTIONS), timeout=CLIENT_TIMEOUT
    ) as client:
        sale_id = f"demo-{secrets.token_hex(3)}"
        locust = burst_locust(opts, sale_id, attempts, secret, env).start()
        try:
            with story.step(
                f"creating the drop {sale_id} once locust ({processes} process"
                f"{'es' if processes != 1 else ''}) holds the burst's {buyers:,} users"
            ):
                if not await asyncio.to_thread(locust.ready):
                    raise RuntimeError(f"locust did not start: see {locust.out_dir}/locust.log")
                start_at = opening(opts)
                created = await client.post(
                    "/v1/sales",
                    json=drop_body(sale_id, serials, payment_timeout_s, slots)
                    | {"start_at": start_at},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                created.raise_for_status()
                locust.go(start_at)
                spread = f", spread over {slots} buckets (hash slots)" if slots > 1 else ""
                story.result(
                    f"{serials:,} serials{spread}, random assignment (commitment "
                    f"{created.json()['assignment_commitment'][:16]}…), 1 per buyer, "
                    f"{payment_timeout_s} s to pay; opens at {start_at[11:19]} UTC, "
                    "once the users have arrived"
                )
            with story.step(
                f"{attempts:,} purchases from {buyers:,} buyers, released together at the opening"
            ):
                rc = await asyncio.to_thread(locust.wait)
                burst = read_burst(opts, rc, epoch_of(start_at), PRICE_CENTS)
        finally:
            locust.stop()
        tell_purchases(story, burst, buyers, (await client.get("/metrics")).text)
        result = burst.result
        tokens = {o["_buyer"]: mint_token(secret, o["_buyer"]) for o in result.sold}

        with story.step(
            "payments: half by provider (30 % of its callbacks lost, 20 % sent twice), "
            f"5 % from wallets, a few paid twice; the rest expire after {payment_timeout_s} s"
        ):
            with story.progress("orders paid or expired", len(result.sold)) as bar:
                outcome: PaymentOutcome = await pay_some(
                    client,
                    need(settings.payments.paysim_url, "FLASHSALE_PAYSIM_URL"),
                    result,
                    tokens,
                    admin,
                    on_wait=bar.update,
                )
            for line in outcome.summary():
                story.result(line)

        with story.step(
            "delivery: each paid order's token minted to its buyer's address; one after-sales"
        ):
            delivery: DeliveryOutcome = await deliver_paid(
                client,
                need(settings.chain.url, "FLASHSALE_CHAIN_URL"),
                sale_id,
                result.sold,
                outcome.statuses,
                tokens,
            )
            for line in delivery.summary().strip().splitlines():
                story.result(line.strip())
            if delivery.delivered:  # one ticket approved: refunded, the token kept
                first = delivery.delivered[0]
                told, problem = await approve_one(client, first, tokens[first["_buyer"]], admin)
                story.result(told or f"PROBLEM: {problem}")
                delivery.problems += [problem] if problem else []
        client_violations = burst.violations() + result.violations(1, outcome.statuses)

        with story.step(
            "orders after the drop: a cart of two merchants, coins, one bill, its tokens"
        ):
            orders: OrdersOutcome = await cart_story(
                client, secret, admin, need(settings.chain.url, "FLASHSALE_CHAIN_URL")
            )
            for line in [*orders.lines, *orders.problems]:
                story.result(line)

        with story.step("the audit: Redis against PostgreSQL, every order, the money"):
            report = await wait_for_audit(client, sale_id, admin, seconds=120)
            sale = (await client.get(f"/v1/sales/{sale_id}")).json()
            tell_audit(story, sale, report, client_violations)
        violations = report.get("violations", ["the audit did not answer"])
        for violation in [*violations, *client_violations]:
            story.say(f"VIOLATION: {violation}")
        ok = bool(report.get("ok")) and not client_violations and outcome.ok and delivery.ok
        ok = ok and orders.ok
        return ok


def tell_audit(
    story: Story, sale: dict[str, Any], report: dict[str, Any], client_violations: list[str]
) -> None:
    violations = report.get("violations", ["the audit did not answer"])
    story.result(
        f"sale: sold {sale['sold']:,} · reserved {sale['reserved']:,} · "
        f"available {sale['available']:,} of {sale['total']:,}"
    )
    story.result(
        f"audit {'ok' if report.get('ok') else 'FAILED'}: {report.get('persisted', '?')} "
        f"orders in PostgreSQL, write-behind lag {report.get('lag', '?')}, "
        f"{len(violations)} violations; the clients saw "
        + (
            "no serial in two live orders, no buyer over the limit"
            if not client_violations
            else f"{len(client_violations)} problems"
        )
    )


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it (``make demo`` runs at the root)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(
    buyers: int = 2000,
    attempts: int = 5000,
    serials: int = 1000,
    *,
    payment_timeout_s: int = 60,
    logs_dir: Path | None = None,
    cluster: bool = False,
    processes: int | None = None,
) -> int:
    given = Settings.from_env()
    story = Story(STEPS if not (given.redis.url or given.database.url) else STEPS - 1)
    run_dir = (logs_dir or REPORTS) / f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "servers.log"
    story.say(
        f"flashsale demo: a drop of {serials:,} serials, {attempts:,} purchase attempts from "
        f"{buyers:,} buyers, payments with faults, then the audit of every invariant."
    )
    story.say(f"The servers' logs go to {_shown(log)}")
    with (
        config_errors(),
        services(story, cluster=cluster) as env,
        contextlib.ExitStack() as running,
    ):
        env.setdefault("FLASHSALE_JWT_SECRET", Settings.from_env(env).checked_jwt_secret())
        env["FLASHSALE_PAYSIM_URL"] = f"http://127.0.0.1:{free_port()}"
        port = free_port()
        with story.step(
            "migrating the database; starting the API, write-behind, timers and a payment simulator"
        ):
            with log.open("ab") as out:
                subprocess.run(_cli("db", "upgrade"), env=env, check=True, stdout=out, stderr=out)
            running.enter_context(paysim(env, log))
            running.enter_context(server(env, port, log))
        url = f"http://127.0.0.1:{port}"
        processes = processes or os.cpu_count() or 1
        # on a cluster the hot drop is a bucketed one: its buyers spread over the masters
        spread = CLUSTER_BUCKETS if cluster else 1
        ok = asyncio.run(
            drive(
                story,
                url,
                env,
                buyers,
                attempts,
                serials,
                payment_timeout_s,
                processes,
                run_dir,
                slots=spread,
            )
        )
    story.say(
        f"verdict: {'PASS' if ok else 'FAIL'} ({story.elapsed():.0f} s; logs in {_shown(log)}; "
        f"locust's reports in {_shown(run_dir / RUN)})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
