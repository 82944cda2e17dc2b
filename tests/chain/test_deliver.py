"""The deliverer against a real hardhat node: deploy, mint, and the pitfalls of minting at scale."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import pytest

from flashsale.chain.contract import mint_data
from flashsale.chain.signer import FeePolicy, Fees, Signer, load_key
from flashsale.chain.views import delivery_of, sale_chain
from flashsale.devservers.chain import EmbeddedChain
from flashsale.engine.engine import Engine
from flashsale.engine.models import SerialsSpec
from flashsale.store.persist import Persister
from tests.chain.helpers import (
    BUYERS,
    alerts,
    eventually,
    paid_orders,
    rpc,
    set_addresses,
    statuses,
    txs_when_settled,
    wait_status,
)

pytestmark = pytest.mark.timeout(120)


async def owner(running: Any, pool: asyncpg.Pool, sale_id: str, token: int) -> str | None:
    contract = await pool.fetchval(
        "SELECT contract FROM sale_contracts WHERE sale_id = $1", sale_id
    )
    result: str | None = await running.deliverer.client.owner_of(contract, token)
    return result


async def first_delivery(engine: Engine, pool: asyncpg.Pool, make_deliverer: Any) -> Any:
    """Sale `drop`, its contract deployed by delivering u0's order; the deliverer halted."""
    await paid_orders(engine, pool, "drop", ["u0"])
    await set_addresses(pool, {"u0": BUYERS[0], "u1": BUYERS[1]})
    running = make_deliverer()
    running.start()
    (order_id,) = [r["order_id"] for r in await pool.fetch("SELECT order_id FROM orders")]
    await wait_status(pool, order_id, "confirmed")
    await running.halt()
    return running


async def _persist(engine: Engine, pool: asyncpg.Pool) -> None:
    await Persister(engine.redis, pool, namespace=engine.namespace, sales=["drop"]).drain()


async def pay_one_more(engine: Engine, pool: asyncpg.Pool, user: str = "u1") -> str:
    order = (await engine.purchase("drop", user)).order
    await engine.confirm_payment(order.order_id, f"pay-{user}")
    await _persist(engine, pool)
    return order.order_id


async def tx_of(pool: asyncpg.Pool, order_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM chain_txs WHERE order_id = $1 ORDER BY nonce DESC LIMIT 1", order_id
    )
    assert row is not None
    return row


async def test_a_paid_order_is_minted_to_its_buyer_on_the_sales_contract(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    orders = await paid_orders(engine, chain_pool, "drop", ["u1", "u2"])
    await set_addresses(chain_pool, {"u1": BUYERS[0], "u2": BUYERS[1].lower()})
    running = make_deliverer()
    running.start()
    for order in orders:
        await wait_status(chain_pool, order.order_id, "confirmed")

    info = await sale_chain(chain_pool, "drop")
    assert info is not None and info.chain_id == chain.chain_id
    assert rpc(chain, "eth_getCode", info.contract, "latest") not in ("0x", "")
    for order, buyer in zip(orders, BUYERS, strict=False):
        assert await owner(running, chain_pool, "drop", int(order.serial)) == buyer
        view = await delivery_of(chain_pool, order)
        assert view.status == "confirmed" and view.address == buyer
        assert view.token_id == str(order.serial)
        assert view.confirmations >= 2
        receipt = rpc(chain, "eth_getTransactionReceipt", view.tx_hash)
        assert receipt["status"] == "0x1" and receipt["to"].lower() == info.contract.lower()


async def test_a_list_sales_token_is_the_serials_position(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any
) -> None:
    serials = SerialsSpec(list=["A-7", "B-3", "C-9"])
    orders = await paid_orders(engine, chain_pool, "drop", ["u1", "u2"], serials=serials)
    await set_addresses(chain_pool, {"u1": BUYERS[0], "u2": BUYERS[1]})
    running = make_deliverer()
    running.start()
    for order in orders:
        await wait_status(chain_pool, order.order_id, "confirmed")
    positions = {"A-7": 1, "B-3": 2, "C-9": 3}
    for order, buyer in zip(orders, BUYERS, strict=False):
        token = positions[str(order.serial)]
        assert (await delivery_of(chain_pool, order)).token_id == str(token)
        assert await owner(running, chain_pool, "drop", token) == buyer


async def test_two_hundred_mints_in_flight_from_one_key_survive_a_restart(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    users = [f"u{i}" for i in range(200)]
    orders = await paid_orders(engine, chain_pool, "drop", users)
    await set_addresses(chain_pool, {u: BUYERS[i % 3] for i, u in enumerate(users)})
    first = make_deliverer()
    first.start()

    async def some_confirmed() -> bool:
        return (await statuses(chain_pool)).get("confirmed", 0) >= 20

    await eventually(some_confirmed, 60)
    await first.halt()  # mid-flight: what it sent is on record, nonces included
    second = make_deliverer()
    second.start()

    async def all_confirmed() -> bool:
        return (await statuses(chain_pool)).get("confirmed", 0) == 200

    await eventually(all_confirmed, 90)
    nonces = [r["nonce"] for r in await chain_pool.fetch("SELECT nonce FROM chain_txs")]
    assert sorted(nonces) == list(range(201))  # the deployment and 200 mints, no gap, no reuse
    sent = int(rpc(chain, "eth_getTransactionCount", chain.dev_address, "latest"), 16)
    assert sent == 201
    contract = await sale_chain(chain_pool, "drop")
    assert contract is not None
    for i, order in enumerate(orders):
        assert await owner(second, chain_pool, "drop", int(order.serial)) == BUYERS[i % 3]


async def test_a_buyer_without_an_address_waits_visibly_then_gets_the_token(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any
) -> None:
    (order,) = await paid_orders(engine, chain_pool, "drop", ["u1"])
    running = make_deliverer()
    running.start()
    await wait_status(chain_pool, order.order_id, "awaiting_address")
    view = await delivery_of(chain_pool, order)
    assert view.status == "awaiting_address" and view.address is None and view.tx_hash is None
    assert await chain_pool.fetchval("SELECT count(*) FROM chain_txs") == 0

    await set_addresses(chain_pool, {"u1": BUYERS[2]})
    await wait_status(chain_pool, order.order_id, "confirmed")
    assert await owner(running, chain_pool, "drop", int(order.serial)) == BUYERS[2]


async def test_a_dropped_transaction_is_broadcast_again(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await first_delivery(engine, chain_pool, make_deliverer)
    rpc(chain, "evm_setAutomine", False)
    rpc(chain, "evm_setIntervalMining", 0)
    order_id = await pay_one_more(engine, chain_pool)
    running = make_deliverer()
    running.start()
    await wait_status(chain_pool, order_id, "submitted")
    tx_hash = (await tx_of(chain_pool, order_id))["tx_hash"]
    assert rpc(chain, "hardhat_dropTransaction", tx_hash) is True
    assert rpc(chain, "eth_getTransactionByHash", tx_hash) is None

    async def back_in_the_pool() -> bool:
        return rpc(chain, "eth_getTransactionByHash", tx_hash) is not None

    with caplog.at_level(logging.INFO, "flashsale.chain"):
        await eventually(back_in_the_pool, 20)
    assert "tx_dropped" in caplog.text
    rpc(chain, "evm_setIntervalMining", 100)
    await wait_status(chain_pool, order_id, "confirmed")
    tx = await tx_of(chain_pool, order_id)
    assert tx["mined_hash"] == tx_hash and tx["bumps"] == 0  # the same signed bytes, once
    assert (
        await chain_pool.fetchval("SELECT count(*) FROM chain_txs WHERE order_id = $1", order_id)
        == 1
    )
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def test_a_reorged_transaction_is_mined_again_before_it_counts(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await first_delivery(engine, chain_pool, make_deliverer)
    rpc(chain, "evm_setIntervalMining", 0)  # blocks only for transactions: no confirmations
    snapshot = rpc(chain, "evm_snapshot")
    order_id = await pay_one_more(engine, chain_pool)
    running = make_deliverer(confirmations=3)
    running.start()

    async def mined() -> bool:
        row = await chain_pool.fetchrow(
            "SELECT status FROM chain_txs WHERE order_id = $1", order_id
        )
        return row is not None and row["status"] == "mined"

    await eventually(mined, 20)
    with caplog.at_level(logging.INFO, "flashsale.chain"):
        assert rpc(chain, "evm_revert", snapshot) is True  # the block with the mint is gone
        tx_hash = (await tx_of(chain_pool, order_id))["tx_hash"]

        async def mined_again() -> bool:
            tx = await tx_of(chain_pool, order_id)
            return "tx_reorged" in caplog.text and tx["status"] == "mined"

        await eventually(mined_again, 20)
    assert rpc(chain, "eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
    assert (
        await chain_pool.fetchval("SELECT status FROM deliveries WHERE order_id = $1", order_id)
        == "submitted"
    )  # 1 confirmation of 3: not delivered yet
    rpc(chain, "evm_setIntervalMining", 100)
    await wait_status(chain_pool, order_id, "confirmed")
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def _replace_pending_nonce(chain: EmbeddedChain, pool: asyncpg.Pool, order_id: str,
                                 data: bytes, to: str) -> None:  # fmt: skip
    """Send, from the minter's key, another transaction with the nonce of ``order_id``'s
    pending mint and a higher price (the node keeps ours out), and mine it."""
    tx = await tx_of(pool, order_id)
    signer = Signer(load_key(chain.dev_key), chain.chain_id)
    fees = Fees(max_fee=int(tx["max_fee"]) * 3, priority_fee=int(tx["priority_fee"]) * 3 + 1)
    other = signer.sign(int(tx["nonce"]), to, data, 200_000, fees)
    rpc(chain, "eth_sendRawTransaction", "0x" + other.raw.hex())
    rpc(chain, "hardhat_mine", "0x1")
    assert rpc(chain, "eth_getTransactionReceipt", other.tx_hash)["status"] == "0x1"


async def _stalled_mint(engine: Engine, pool: asyncpg.Pool, make_deliverer: Any,
                        chain: EmbeddedChain) -> tuple[Any, str]:  # fmt: skip
    """u1's mint signed and sent, and left unmined (no mining at all meanwhile)."""
    await first_delivery(engine, pool, make_deliverer)
    rpc(chain, "evm_setAutomine", False)
    rpc(chain, "evm_setIntervalMining", 0)
    order_id = await pay_one_more(engine, pool)
    running = make_deliverer()
    running.start()
    await wait_status(pool, order_id, "submitted")
    return running, order_id


async def test_a_mint_that_landed_while_we_thought_it_failed_is_not_minted_twice(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    running, order_id = await _stalled_mint(engine, chain_pool, make_deliverer, chain)
    contract = await chain_pool.fetchval("SELECT contract FROM sale_contracts")
    # the same mint, signed outside our records, lands under our nonce: to the deliverer
    # its own transaction vanished and its nonce is used by someone else
    await _replace_pending_nonce(chain, chain_pool, order_id, mint_data(BUYERS[1], 2), contract)
    rpc(chain, "evm_setIntervalMining", 100)
    await wait_status(chain_pool, order_id, "confirmed")
    # checked on chain: no second mint sent
    assert await txs_when_settled(chain_pool, order_id) == ["lost"]
    assert "nonce_taken" in await alerts(chain_pool)
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def test_a_nonce_taken_by_another_transaction_is_minted_under_a_new_one(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    running, order_id = await _stalled_mint(engine, chain_pool, make_deliverer, chain)
    await _replace_pending_nonce(chain, chain_pool, order_id, b"", chain.dev_address)
    rpc(chain, "evm_setIntervalMining", 100)
    await wait_status(chain_pool, order_id, "confirmed")
    assert await txs_when_settled(chain_pool, order_id) == ["lost", "confirmed"]
    sql = "SELECT attempts FROM deliveries WHERE order_id = $1"
    assert await chain_pool.fetchval(sql, order_id) == 2
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def test_a_stuck_transaction_is_signed_again_with_higher_fees(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    await first_delivery(engine, chain_pool, make_deliverer)
    rpc(chain, "evm_setAutomine", False)
    rpc(chain, "evm_setIntervalMining", 0)
    base = 10**9
    rpc(chain, "hardhat_setNextBlockBaseFeePerGas", hex(base))
    rpc(chain, "hardhat_mine", "0x1")
    order_id = await pay_one_more(engine, chain_pool)
    low = FeePolicy(start=Fees(max_fee=base * 2 // 3, priority_fee=1))  # under the base fee
    running = make_deliverer(fees=low, bump_after_s=0.3, recheck_after_s=0.2)
    running.start()
    await wait_status(chain_pool, order_id, "submitted")
    first_hash = (await tx_of(chain_pool, order_id))["tx_hash"]

    async def mined() -> bool:
        # blocks keep coming at that base fee: only a price above it gets in
        rpc(chain, "hardhat_setNextBlockBaseFeePerGas", hex(base))
        rpc(chain, "hardhat_mine", "0x1")
        return (await tx_of(chain_pool, order_id))["status"] != "pending"

    await eventually(mined, 30, poll_s=0.2)
    tx = await tx_of(chain_pool, order_id)
    assert tx["bumps"] >= 1 and len(tx["hashes"]) == tx["bumps"] + 1
    assert tx["mined_hash"] != first_hash and tx["max_fee"] >= base
    assert tx["nonce"] == 2  # the same nonce (0 deployed, 1 minted u0's), signed again
    rpc(chain, "evm_setIntervalMining", 100)
    await wait_status(chain_pool, order_id, "confirmed")
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def test_deliveries_wait_while_the_node_is_down_and_resume(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any, chain: EmbeddedChain
) -> None:
    await first_delivery(engine, chain_pool, make_deliverer)
    order_id = await pay_one_more(engine, chain_pool)
    chain.pause()  # hangs: every call times out
    try:
        running = make_deliverer()
        running.start()

        async def alerted() -> bool:
            return "chain_unreachable" in await alerts(chain_pool)

        await eventually(alerted, 20)
        assert await chain_pool.fetchval(
            "SELECT status FROM deliveries WHERE order_id = $1", order_id
        ) in (None, "queued")
    finally:
        chain.resume()
    began = time.monotonic()
    await wait_status(chain_pool, order_id, "confirmed")
    assert time.monotonic() - began < 25
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[1]


async def test_an_order_cancelled_before_its_delivery_is_not_minted_until_paid_again(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any
) -> None:
    await first_delivery(engine, chain_pool, make_deliverer)
    order_id = await pay_one_more(engine, chain_pool, "u2")  # u2 has no address yet
    running = make_deliverer()
    running.start()
    await wait_status(chain_pool, order_id, "awaiting_address")
    await engine.request_refund(order_id, user_id="u2", reason="cancelled by buyer")
    await _persist(engine, chain_pool)
    await wait_status(chain_pool, order_id, "cancelled")
    await set_addresses(chain_pool, {"u2": BUYERS[2]})
    await engine.reject_refund(order_id, reason="refund rejected")  # paid again
    await _persist(engine, chain_pool)
    await wait_status(chain_pool, order_id, "confirmed")
    assert await txs_when_settled(chain_pool, order_id) == ["confirmed"]
    assert await owner(running, chain_pool, "drop", 2) == BUYERS[2]


async def test_delivery_moves_the_order_to_delivered_then_completed_in_redis_and_postgres(
    engine: Engine, chain_pool: asyncpg.Pool, make_deliverer: Any
) -> None:
    from flashsale.engine import errors

    orders = await paid_orders(engine, chain_pool, "drop", ["u1", "u2"])
    await set_addresses(chain_pool, {"u1": BUYERS[0], "u2": BUYERS[1]})
    running = make_deliverer()
    running.start()
    for order in orders:
        await wait_status(chain_pool, order.order_id, "confirmed")
    await running.halt()
    first, second = (o.order_id for o in orders)
    for order_id in (first, second):
        got = await engine.get_order(order_id)
        assert got is not None and got.status == "delivered"
    with pytest.raises(errors.OrderDelivered):
        await engine.request_refund(first, user_id="u1", reason="too late")
    assert (await engine.complete(first, user_id="u1"))[0].status == "completed"
    now = engine.clock()
    engine.clock = lambda: now + 604_800_000 + 1  # the default after-sales window passed
    assert await engine.due_completions("drop") == [second]
    assert (await engine.complete(second))[0].status == "completed"
    await _persist(engine, chain_pool)
    rows = await chain_pool.fetch("SELECT status FROM orders ORDER BY order_id")
    assert [r["status"] for r in rows] == ["completed", "completed"]
    kinds = await chain_pool.fetch(
        "SELECT type FROM order_events WHERE order_id = $1 ORDER BY version", first
    )
    assert [r["type"] for r in kinds] == [
        "purchased", "paid", "delivery_started", "delivered", "completed"
    ]  # fmt: skip
    done = await engine.get_order(first)
    assert done is not None and (await delivery_of(chain_pool, done)).status == "confirmed"
