"""A checkout: every serial of a cart bought through the engine's purchase path, all or
nothing, then split by merchant into a parent bill and one bill per merchant.

Each serial is one ``Engine.purchase`` in its own sale's slot (so a cart works on a
Redis Cluster), all of them at once; when one is refused, what the checkout got is
cancelled before the refusal is answered. Coins are taken, and the checkout, its
orders and bills are written, in one PostgreSQL transaction after the purchases.
An Idempotency-Key replays the first answer, as for a purchase: the checkouts of one
buyer's key are serialised by an advisory lock, and only a success is remembered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from flashsale.engine import errors as engine_errors
from flashsale.engine.engine import Engine
from flashsale.engine.models import Order, Sale
from flashsale.errors import FlashsaleError, ValidationFailed
from flashsale.orders.errors import CoinsExceedGoods
from flashsale.orders.models import (
    MAX_CART_SERIALS,
    Bill,
    CheckoutCreate,
    CheckoutOrder,
    CheckoutOut,
    SubOrder,
)
from flashsale.orders.queries import q
from flashsale.payments import coins
from flashsale.payments.context import new_id
from flashsale.payments.errors import InsufficientCoins

log = logging.getLogger(__name__)
_decode_answer = msgspec.json.Decoder(CheckoutOut).decode


@dataclass(frozen=True, slots=True)
class Placed:
    """A checkout's answer and whether it is the replay of an earlier one."""

    checkout: CheckoutOut
    replayed: bool


def _check_cart(body: CheckoutCreate) -> None:
    if not body.items:
        raise ValidationFailed("the cart is empty: give at least one item")
    seen: set[str] = set()
    for i, item in enumerate(body.items):
        if item.sale_id in seen:
            raise ValidationFailed(f"items[{i}]: list each sale once, with its quantity")
        seen.add(item.sale_id)
    if sum(item.quantity for item in body.items) > MAX_CART_SERIALS:
        raise ValidationFailed(f"a checkout holds at most {MAX_CART_SERIALS} serials")


def build_bills(
    checkout_id: str, user_id: str, currency: str, lines: Sequence[CheckoutOrder]
) -> tuple[Bill, list[SubOrder]]:
    """The parent bill over every order and one merchant bill per merchant (first seen first)."""

    def bill(kind: str, merchant_id: str | None, of: Sequence[CheckoutOrder]) -> Bill:
        goods = sum(o.price_cents for o in of)
        spent = sum(o.coins_cents for o in of)
        return Bill(
            bill_id=new_id("bill"),
            kind="parent" if kind == "parent" else "merchant",
            status="open",
            goods_cents=goods,
            coins_cents=spent,
            to_pay_cents=goods - spent,
            currency=currency,
            order_ids=[o.order_id for o in of],
            checkout_id=checkout_id,
            merchant_id=merchant_id,
        )

    merchants: dict[str, list[CheckoutOrder]] = {}
    for line in lines:
        merchants.setdefault(line.merchant_id, []).append(line)
    subs = [
        SubOrder(merchant_id=m, order_ids=[o.order_id for o in of], bill=bill("merchant", m, of))
        for m, of in merchants.items()
    ]
    return bill("parent", None, lines), subs


class Checkouts:
    def __init__(self, pool: asyncpg.Pool, engine: Engine) -> None:
        self.pool = pool
        self.engine = engine

    async def place(
        self,
        user_id: str,
        body: CheckoutCreate,
        *,
        ip: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> Placed:
        _check_cart(body)
        if idempotency_key is None:
            return Placed(await self._place(user_id, body, ip, None, ""), replayed=False)
        lock = f"{user_id}\n{idempotency_key}"
        async with self.pool.acquire() as conn:
            await conn.execute(q("checkout_lock"), lock)
            try:
                first = await conn.fetchrow(q("checkout_by_key"), user_id, idempotency_key)
                if first is not None:
                    if first["fingerprint"] != fingerprint:
                        raise engine_errors.IdempotencyMismatch(
                            "this Idempotency-Key was used for another checkout"
                        )
                    return Placed(_decode_answer(first["answer"]), replayed=True)
                checkout = await self._place(user_id, body, ip, idempotency_key, fingerprint)
                return Placed(checkout, replayed=False)
            finally:
                await conn.execute(q("checkout_unlock"), lock)

    async def _sales(self, body: CheckoutCreate) -> list[Sale]:
        sales: list[Sale] = []
        for i, item in enumerate(body.items):
            try:
                sales.append(await self.engine.get_sale(item.sale_id))
            except engine_errors.SaleNotFound:
                # as a purchase of that sale answers
                raise engine_errors.SaleNotFound(f"items[{i}]: no sale {item.sale_id}") from None
        if len({s.currency for s in sales}) > 1:
            raise ValidationFailed("a checkout pays in one currency: the cart mixes currencies")
        return sales

    async def _place(
        self,
        user_id: str,
        body: CheckoutCreate,
        ip: str | None,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> CheckoutOut:
        sales = await self._sales(body)
        currency = sales[0].currency
        slots = list(zip(sales, body.items, strict=True))
        goods = sum(s.price_cents * item.quantity for s, item in slots)
        wanted_coins = body.coins_cents
        if wanted_coins > goods:
            raise CoinsExceedGoods(f"coins_cents is more than the goods ({goods})")
        # checked before buying (the spend itself is checked again when it is made)
        if wanted_coins and await coins.balance(self.pool, user_id, currency) < wanted_coins:
            raise InsufficientCoins("the buyer holds fewer coins than coins_cents")
        checkout_id = new_id("co")
        wanted = [s for s, item in slots for _ in range(item.quantity)]
        orders = await self._buy_all(checkout_id, user_id, ip, [s.sale_id for s in wanted])
        try:
            checkout = self._answer(checkout_id, user_id, wanted, orders, body.coins_cents)
            await self._record(checkout, user_id, idempotency_key, fingerprint)
        except BaseException:
            await self._release(orders, user_id, "checkout not completed")
            raise
        return checkout

    async def _buy_one(self, sale_id: str, user_id: str, ip: str | None, key: str) -> Order:
        """One serial; an unknown outcome is asked again under the same key (a replay)."""
        try:
            return (await self.engine.purchase(sale_id, user_id, ip=ip, idempotency_key=key)).order
        except engine_errors.OutcomeUnknown:
            return (await self.engine.purchase(sale_id, user_id, ip=ip, idempotency_key=key)).order

    async def _buy_all(
        self, checkout_id: str, user_id: str, ip: str | None, sale_ids: list[str]
    ) -> list[Order]:
        results = await asyncio.gather(
            *(
                self._buy_one(sale_id, user_id, ip, f"{checkout_id}:{i}")
                for i, sale_id in enumerate(sale_ids)
            ),
            return_exceptions=True,
        )
        got = [r for r in results if isinstance(r, Order)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            first = failed[0]  # the answer carries the first refused item's code
            code = first.code if isinstance(first, FlashsaleError) else "error"
            await self._release(got, user_id, f"checkout refused: {code}")
            raise first
        return got

    async def _release(self, orders: Sequence[Order], user_id: str, reason: str) -> None:
        """Cancel what a checkout got, at once; one that cannot be cancelled now expires."""
        results = await asyncio.gather(
            *(self.engine.cancel(o.order_id, user_id=user_id, reason=reason) for o in orders),
            return_exceptions=True,
        )
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "checkout release failed",
                    extra={"order_id": order.order_id, "error": str(result)},
                )

    def _answer(
        self,
        checkout_id: str,
        user_id: str,
        sales: Sequence[Sale],
        orders: Sequence[Order],
        coins_cents: int,
    ) -> CheckoutOut:
        if len({o.currency for o in orders}) > 1:  # a sale re-priced between the reads
            raise ValidationFailed("a checkout pays in one currency: the cart mixes currencies")
        shares = coins.spread(coins_cents, [o.price_cents for o in orders])
        lines = [
            CheckoutOrder(
                order_id=o.order_id,
                sale_id=o.sale_id,
                serial=o.serial,
                status=o.status,
                expires_at=o.expires_at,
                price_cents=o.price_cents,
                currency=o.currency,
                checkout_id=checkout_id,
                merchant_id=s.merchant_id,
                coins_cents=share,
                to_pay_cents=o.price_cents - share,
            )
            for o, s, share in zip(orders, sales, shares, strict=True)
        ]
        parent, subs = build_bills(checkout_id, user_id, orders[0].currency, lines)
        return CheckoutOut(
            checkout_id=checkout_id,
            status="pending_payment",
            orders=lines,
            bill=parent,
            sub_orders=subs,
        )

    async def _record(
        self,
        checkout: CheckoutOut,
        user_id: str,
        idempotency_key: str | None,
        fingerprint: str,
    ) -> None:
        """Take the coins and write the checkout, its orders and bills: one transaction
        (without coins, one statement: the write is one round trip)."""
        parent, lines = checkout.bill, checkout.orders
        bills = [parent, *(sub.bill for sub in checkout.sub_orders)]
        args = (
            checkout.checkout_id,
            user_id,
            parent.currency,
            parent.goods_cents,
            parent.coins_cents,
            idempotency_key,
            fingerprint,
            msgspec.json.encode(checkout).decode(),
            [o.order_id for o in lines],
            [o.sale_id for o in lines],
            [o.merchant_id for o in lines],
            [o.price_cents for o in lines],
            [o.coins_cents for o in lines],
            [b.bill_id for b in bills],
            [b.kind for b in bills],
            [b.merchant_id for b in bills],
            [b.goods_cents for b in bills],
            [b.coins_cents for b in bills],
            [b.to_pay_cents for b in bills],
        )
        if not parent.coins_cents:
            await self.pool.execute(q("insert_checkout"), *args)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await coins.move(
                conn,
                user_id,
                parent.currency,
                -parent.coins_cents,
                "spend",
                checkout_id=checkout.checkout_id,
                reason=f"checkout {checkout.checkout_id}",
                actor=user_id,
            )
            await conn.execute(q("insert_checkout"), *args)
