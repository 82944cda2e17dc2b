"""``flashsale loadtest checkout``: carts across three drops of two merchants, with coins,
paid through the parent bill or merchant by merchant (the provider simulator).

Like a drop (runner.py): the drops are created through the admin API, locust runs
``CartBuyer`` in a child process, the run settles (write-behind drained, nothing
pending), and the verdict joins every drop's audit (its money audit checks the bills'
shares and the coins) with what the clients saw and what is read back: a cart holds
all it asked for or nothing, a cart paid by its parent bill is paid whole or not at
all, nothing stays pending, and each buyer's coins are what it was credited less the
coins of its orders still paid for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from flashsale.api.tokens import mint_token
from flashsale.engine.statuses import SOLD
from flashsale.loadtest.burst import Holding, holding_violations
from flashsale.loadtest.housekeeping import clean_up
from flashsale.loadtest.options import Options
from flashsale.loadtest.runner import (
    Locust,
    begin,
    conclude,
    reachable,
    read_back,
    sale_body,
    settle,
    timed_run,
)
from flashsale.loadtest.seen import Seen

DROPS = (("a", "merchant-1", 9900), ("b", "merchant-1", 4900), ("c", "merchant-2", 2900))
COINS_CENTS = 3000  # each buyer's coins, credited by the buyer's locust user at its start
COIN_CHECKS_MAX = 300  # buyers whose coins are read back at the end, bounded
PAID_FOR = SOLD  # orders whose coins stay spent (paid, delivered, refund_pending)


def load_carts(directory: Path) -> list[dict[str, Any]]:
    carts: list[dict[str, Any]] = []
    for path in sorted(directory.glob("carts-*.json")):
        carts.extend(json.loads(path.read_text()))
    return carts


def cart_violations(
    carts: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, str],
    coins: Mapping[str, int],
    credited: int,
) -> list[str]:
    """The carts' own invariants (pure: records in, violations out)."""
    found: list[str] = []
    for cart in carts:
        orders = cart.get("orders") or []
        asked = sorted(cart.get("asked", []))
        who = f"cart of {cart.get('buyer')}"
        if cart.get("checkout_id") and sorted(str(o.get("sale_id")) for o in orders) != asked:
            found.append(f"{who}: asked for {asked}, was given {len(orders)} orders")
        final = [statuses.get(str(o.get("order_id")), "") for o in orders]
        if "pending_payment" in final:
            found.append(f"{who}: an order is still pending after the run")
        if cart.get("paid") == "parent" and len({s in PAID_FOR for s in final if s}) > 1:
            found.append(f"{who}: paid by its parent bill, yet only partly paid ({final})")
        buyer = str(cart.get("buyer"))
        if buyer in coins and all(final):
            kept = sum(
                int(o.get("coins_cents") or 0)
                for o, s in zip(orders, final, strict=True)
                if s in PAID_FOR
            )
            if coins[buyer] != credited - kept:
                found.append(
                    f"{who}: holds {coins[buyer]} coins, expected {credited - kept} "
                    f"({credited} credited, {kept} kept by paid orders)"
                )
    if not any(cart.get("checkout_id") for cart in carts):
        found.append("no checkout succeeded")
    return found


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _coins(client: httpx.Client, secret: str, buyers: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for buyer in buyers[:COIN_CHECKS_MAX]:
        try:
            answer = client.get("/v1/me/wallet", headers=_auth(mint_token(secret, buyer)))
        except httpx.HTTPError:
            continue
        if answer.status_code == 200:
            found[buyer] = int(answer.json().get("coins_cents", 0))
    return found


def run_checkout(opts: Options, echo: Callable[[str], None] = print) -> int:
    """The checkout load test; 0 on PASS, 1 on FAIL, 2 when it could not start."""
    secret, admin, out_dir = begin(opts)
    sale_ids = [f"lt-{opts.run}"[:62] + f"-{name}" for name, _, _ in DROPS]
    with httpx.Client(base_url=opts.host, timeout=30, limits=httpx.Limits(max_connections=4)) as c:
        if not reachable(c, opts, echo):
            return 2
        for sale_id, (_, merchant, price) in zip(sale_ids, DROPS, strict=True):
            body = sale_body(opts, sale_id) | {"merchant_id": merchant, "price_cents": price}
            created = c.post("/v1/sales", json=body, headers=admin)
            if created.status_code != 201:
                echo(f"could not create {sale_id}: {created.status_code} {created.text[:300]}")
                echo("verdict: FAIL")
                return 2
        echo(
            f"drops {', '.join(sale_ids)}: {opts.serials:,} serials each for {opts.users:,} "
            f"carts; running locust (checkout, at most {opts.run_time_s} s) ..."
        )
        extra = {"sale_ids": sale_ids, "coins_cents": COINS_CENTS}
        rc = timed_run(Locust(opts, sale_ids[0], out_dir, secret, extra).start(), echo)
        seen, carts = Seen.load_dir(out_dir), load_carts(out_dir)
        settled = {
            s: settle(c, s, admin, opts.drain_timeout_s, until_no_pending=True) for s in sale_ids
        }
        order_ids = [str(o["order_id"]) for cart in carts for o in cart.get("orders") or []]
        statuses = read_back(c, admin, order_ids)
        coins = _coins(c, secret, [str(cart["buyer"]) for cart in carts])
        cleanup = [line for s in sale_ids for line in clean_up(c, opts, s, admin)]
    violations = judge_checkout(opts, seen, carts, settled, statuses, coins, rc)
    (out_dir / "verdict.json").write_text(
        json.dumps({"violations": violations, "audits": settled}, indent=1, default=str)
    )
    ok = sum(1 for cart in carts if cart.get("checkout_id"))
    refused = " · ".join(f"{k} {n:,}" for k, n in seen.refused.most_common()) or "none"
    paid = " · ".join(f"{k} {n}" for k, n in sorted(seen.payments.items())) or "none"
    lines = [
        f"flashsale loadtest checkout · run {opts.run} · {opts.host}",
        f"carts: {len(carts):,} tried · {ok:,} bought whole · refused {refused}",
        f"  payments  {paid}",
        f"orders read back: {len(statuses):,} · coins checked for {len(coins):,} buyers",
        *[
            f"audit {s}: "
            + (
                "no answer"
                if a is None
                else f"{'ok' if a.get('ok') else 'NOT OK'}, lag {a.get('lag')}"
            )
            for s, (a, _, _) in settled.items()
        ],
        *cleanup,
        f"reports: {out_dir}",
    ]
    return conclude(lines, violations, echo)


def judge_checkout(
    opts: Options,
    seen: Seen,
    carts: Sequence[Mapping[str, Any]],
    settled: Mapping[str, tuple[dict[str, Any] | None, dict[str, Any] | None, str]],
    statuses: Mapping[str, str],
    coins: Mapping[str, int],
    locust_rc: int,
) -> list[str]:
    found: list[str] = []
    if locust_rc not in (0, 1):
        found.append(f"locust did not finish its run (exit {locust_rc})")
    holdings = [
        Holding(
            order_id=o.order_id,
            serial=o.serial,
            buyer=o.buyer,
            acquired=o.received_at,
            released=o.earliest_release(),
        )
        for o in seen.orders().values()
    ]
    # a cart takes one serial of each drop it names: at most one per drop and buyer
    found += holding_violations(holdings, len(DROPS), skew_s=opts.skew_s)
    found += seen.problems
    requests, errors = sum(seen.requests.values()), sum(seen.errors.values())
    if requests and errors / requests > opts.max_error_rate:
        found.append(f"{errors} of {requests} requests failed (over {opts.max_error_rate:.1%})")
    found += cart_violations(carts, statuses, coins, COINS_CENTS)
    for sale_id, (audit, sale, why) in settled.items():
        if audit is None:
            found.append(f"{sale_id}: the audit did not answer ({why})")
            continue
        found += [f"{sale_id} audit: {v}" for v in audit.get("violations", [])]
        if audit.get("lag") != 0:
            found.append(f"{sale_id}: write-behind did not drain: lag {audit.get('lag')} ({why})")
        if sale is not None:
            total, parts = sale.get("total"), ("sold", "reserved", "available")
            if sum(int(sale.get(p, 0)) for p in parts) != total:
                found.append(f"{sale_id}: sale counters do not add up to {total}")
            if sale.get("buckets", 1) != opts.buckets:
                found.append(f"{sale_id}: {sale.get('buckets', 1)} buckets, asked {opts.buckets}")
    return found
