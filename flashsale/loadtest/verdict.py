"""The load test's verdict: the server's audit joined with what the clients saw.

Every function here is pure (records in, violations out), so the verdict is
tested on hand-made records (tests/loadtest/test_verdict.py).
"""

from __future__ import annotations

from typing import Any

from flashsale.engine.statuses import HOLDS_SERIAL
from flashsale.loadtest.burst import BurstResult, Holding, holding_violations
from flashsale.loadtest.options import Options
from flashsale.loadtest.seen import Seen

REFUNDS = frozenset({"refund_pending", "refunded"})


def to_read_back(seen: Seen, per_user_limit: int) -> list[str]:
    """Orders whose final state the verdict needs: those paid from a wallet, those sharing a
    serial with another order, and those of buyers given more orders than the limit."""
    orders = seen.orders()
    by_serial: dict[str, list[str]] = {}
    by_buyer: dict[str, list[str]] = {}
    for o in orders.values():
        by_serial.setdefault(o.serial, []).append(o.order_id)
        by_buyer.setdefault(o.buyer, []).append(o.order_id)
    wanted = [o.order_id for o in orders.values() if o.paid == "balance"]
    wanted += [i for ids in by_serial.values() if len(ids) > 1 for i in ids]
    wanted += [i for ids in by_buyer.values() if len(ids) > per_user_limit for i in ids]
    return list(dict.fromkeys(wanted))


def final_state_violations(seen: Seen, statuses: dict[str, str], per_user_limit: int) -> list[str]:
    """At the end, from the orders read back: one serial in two live orders, a buyer over the
    limit, one order answered as new twice (the demo's checks), and a wallet payment whose
    order is not paid."""
    found = BurstResult.from_seen(seen).violations(per_user_limit, statuses)
    orders = seen.orders()
    for order_id, status in statuses.items():
        o = orders.get(order_id)
        if o is not None and o.paid == "balance" and status not in HOLDS_SERIAL | REFUNDS:
            found.append(f"order {order_id} was paid from a wallet but is {status}")
    return found


def dead_payment_paths(seen: Seen) -> list[str]:
    """A payment method clients tried that never once worked: the run did not test it."""
    found = []
    for method, worked in (("balance", "balance succeeded"), ("provider", "provider pay_url ok")):
        tried = {k: n for k, n in seen.payments.items() if k.startswith(method)}
        if sum(tried.values()) and not seen.payments[worked]:
            how = ", ".join(f"{k} {n}" for k, n in sorted(tried.items()))
            found.append(f"every {method} payment failed ({how})")
    return found


def clients_violations(opts: Options, seen: Seen, locust_rc: int = 0) -> list[str]:
    """What the clients saw go wrong, whatever the server says (the run's records alone):
    a serial held twice at once, a buyer or address over its limit, a serial outside the
    sale, a contract break, too many failed requests, a run that sold nothing."""
    found: list[str] = []
    # locust exits 1 when a request was marked failed: the error rate below judges those
    if locust_rc not in (0, 1):
        found.append(f"locust did not finish its run (exit {locust_rc})")
    found += dead_payment_paths(seen)
    orders = seen.orders()
    holdings = [
        Holding(
            order_id=o.order_id,
            serial=o.serial,
            buyer=o.buyer,
            ip=o.ip,
            acquired=o.received_at,
            released=o.earliest_release(),
        )
        for o in orders.values()
    ]
    found += holding_violations(
        holdings,
        opts.per_user_limit,
        # exact on a bucketed drop too (docs/design.md, "The per-IP limit across buckets")
        opts.per_ip_limit if opts.scenario == "bots" and opts.per_ip_limit else None,
        skew_s=opts.skew_s,
    )
    assert opts.serials is not None
    outside = [
        o.serial
        for o in orders.values()
        if not o.serial.isdigit() or not 1 <= int(o.serial) <= opts.serials
    ]
    if outside:
        found.append(f"{len(outside)} orders hold serials outside the sale: {outside[:5]}")
    found += seen.problems
    requests = sum(seen.requests.values())
    errors = sum(seen.errors.values())
    if requests and errors / requests > opts.max_error_rate:
        kinds = ", ".join(f"{k} {n}" for k, n in seen.errors.most_common(4))
        found.append(
            f"{errors} of {requests} requests failed (over {opts.max_error_rate:.1%}): {kinds}"
        )
    if opts.scenario in ("drop", "burst") and not orders:
        found.append("no purchase succeeded")
    limited = seen.refused["limit_reached"] + seen.refused["rate_limited"]
    if opts.scenario == "bots" and not limited:
        found.append("the bots were never refused with limit_reached or rate_limited")
    return found


def judge(
    opts: Options,
    seen: Seen,
    audit: dict[str, Any] | None,
    sale: dict[str, Any] | None,
    settle_why: str,
    statuses: dict[str, str],
    locust_rc: int = 0,
) -> list[str]:
    """Every broken invariant, the server's and the clients' together."""
    found = clients_violations(opts, seen, locust_rc)
    orders = seen.orders()
    if audit is None:
        found.append(f"the audit did not answer ({settle_why})")
    else:
        found += [f"audit: {_violation_text(v)}" for v in audit.get("violations", [])]
        if audit.get("violations") == [] and audit.get("ok") is not True:
            found.append("audit: not ok")
        if audit.get("lag") != 0:
            found.append(f"write-behind did not drain: lag {audit.get('lag')} ({settle_why})")
        persisted = audit.get("persisted")
        if isinstance(persisted, int) and persisted < len(orders):
            found.append(f"clients were given {len(orders)} orders, PostgreSQL holds {persisted}")
    if sale is not None:
        total, sold = sale.get("total"), sale.get("sold", 0)
        reserved, available = sale.get("reserved", 0), sale.get("available", 0)
        if total != opts.serials or sold + reserved + available != total:
            found.append(
                f"sale counters: sold {sold} + reserved {reserved} + available {available} "
                f"!= total {total} (created with {opts.serials})"
            )
        if sale.get("buckets", 1) != opts.buckets:
            found.append(f"the sale has {sale.get('buckets', 1)} buckets, asked for {opts.buckets}")
        balance_paid = sum(1 for o in orders.values() if o.paid == "balance")
        if balance_paid > sold:
            found.append(f"clients paid {balance_paid} orders from their wallets, sale sold {sold}")
    found += final_state_violations(seen, statuses, opts.per_user_limit)
    return found


def _violation_text(v: Any) -> str:
    if isinstance(v, dict):
        text = f"{v.get('code', '?')}: {v.get('detail', '')}"
        if v.get("count", 1) != 1:
            text += f" ({v['count']} times)"
        if v.get("examples"):
            text += f", e.g. {', '.join(map(str, v['examples'][:3]))}"
        return text
    return str(v)
