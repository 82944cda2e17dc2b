"""`flashsale admin ...`: the admin desk from a shell, against the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import json
import secrets

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.engine.models import SaleCreate, SerialsSpec
from flashsale.payments import coins, wallet
from flashsale.payments.passwords import PasswordPolicy, Passwords
from flashsale.store.persist import Persister

from .conftest import Cli

QUICK_HASH = PasswordPolicy(time_cost=1, memory_cost_kib=1024, parallelism=1)


async def _setup(cli: Cli, sale_id: str, buyer: str) -> list[str]:
    """A sale with three orders written behind, a credited wallet, a payment password."""
    engine = Engine.from_url(
        cli.env["FLASHSALE_REDIS_URL"], namespace=cli.env["FLASHSALE_NAMESPACE"]
    )
    pool = await asyncpg.create_pool(cli.database_url, min_size=1, max_size=2)
    try:
        await engine.create_sale(
            SaleCreate(sale_id=sale_id, name="desk", serials=SerialsSpec(range=(1, 10)))
        )
        orders = [(await engine.purchase(sale_id, f"{buyer}-{i}")).order.order_id for i in range(3)]
        await Persister(engine.redis, pool, namespace=engine.namespace).drain(timeout_s=30)
        await wallet.credit(pool, buyer, 1234, "CNY", "goodwill", "ops", f"k-{sale_id}")
        await coins.credit(pool, buyer, 500, "CNY", "welcome coins", "ops", f"c-{sale_id}")
        await Passwords(pool, QUICK_HASH).set(buyer, "135790", None)
        return orders
    finally:
        await pool.close()
        await engine.aclose()


def test_the_admin_desk_from_a_shell(cli: Cli) -> None:
    sale_id, buyer = f"desk-{secrets.token_hex(3)}", f"buyer-{secrets.token_hex(3)}"
    orders = asyncio.run(_setup(cli, sale_id, buyer))

    done = cli.run("admin", "sales", "--json")
    assert done.returncode == 0, done.stderr
    [listed] = [s for s in json.loads(done.stdout)["items"] if s["sale_id"] == sale_id]
    assert (listed["total"], listed["reserved"], listed["in_redis"]) == (10, 3, True)

    done = cli.run("admin", "orders", sale_id, "--limit", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["order", "status", "serial"]
    first = [line.split()[0] for line in lines[1:3]]
    assert lines[3].startswith("more: --cursor ")
    cursor = lines[3].split()[-1]
    done = cli.run("admin", "orders", sale_id, "--limit", "2", "--cursor", cursor, "--json")
    page = json.loads(done.stdout)
    rest = [o["order_id"] for o in page["items"]]
    assert len(rest) == 1 and page["next_cursor"] is None
    assert sorted(first + rest) == sorted(orders)  # each once, over two pages

    done = cli.run("admin", "serial", sale_id, "2", "--json")
    assert [o["order_id"] for o in json.loads(done.stdout)] == [orders[1]]

    done = cli.run("admin", "ledger", buyer)
    assert done.returncode == 0, done.stderr
    assert f"buyer {buyer}: 12.34 CNY + 5.00 coins" in done.stdout and "goodwill" in done.stdout
    [coin_line] = [line for line in done.stdout.splitlines() if "welcome coins" in line]
    assert coin_line.split()[2:5] == ["coins", "credit", "+5.00"], coin_line

    done = cli.run("admin", "unlock-password", buyer, "--reason", "ticket 9: locked out")
    assert done.returncode == 0, done.stderr
    assert f"unlock  by cli:{getpass.getuser()}: ticket 9: locked out" in done.stdout
    done = cli.run(
        "admin", "reset-password", buyer, "--reason", "forgot", "--actor", "ops-ann", "--json"
    )
    state = json.loads(done.stdout)
    assert state["set"] is False
    assert [(a["action"], a["actor"]) for a in state["actions"]] == [
        ("reset", "ops-ann"),
        ("unlock", f"cli:{getpass.getuser()}"),
    ]
    done = cli.run("admin", "unlock-password", buyer, "--reason", "again")
    assert done.returncode == 1 and "payment_password_not_set" in done.stderr
    done = cli.run("admin", "reset-password", buyer, "--reason", "")
    assert done.returncode == 2 and "validation_error" in done.stderr
