"""Balance payments: the payment password, the ledger, and no overdraft under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from flashsale.errors import ValidationFailed
from flashsale.payments import errors
from flashsale.payments.audit import money_audit
from flashsale.payments.models import PaymentCreate

from .conftest import Flow

PASSWORD = "246810"


def balance(password: str = PASSWORD) -> PaymentCreate:
    return PaymentCreate(method="balance", payment_password=password)


async def test_concurrent_balance_debits_never_overdraw(flow: Flow) -> None:
    sale = await flow.sale(size=20, price_cents=300, per_user_limit=20)
    orders = [await flow.buy(sale.sale_id, "rich") for _ in range(12)]
    await flow.service.set_password("rich", PASSWORD, None)
    await flow.service.credit_wallet("rich", 1000, "top-up", actor="ops")

    results = await asyncio.gather(
        *(flow.service.start_payment(o.order_id, "rich", balance()) for o in orders),
        return_exceptions=True,
    )
    paid = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(paid) == 3
    assert all(isinstance(r, errors.InsufficientBalance) for r in refused), refused
    wallet = await flow.service.wallet("rich")
    assert wallet.balance_cents == 100
    assert sum(e.amount_cents for e in wallet.entries) == 100
    assert sorted(e.kind for e in wallet.entries) == ["credit", "debit", "debit", "debit"]
    assert (await flow.engine.get_sale(sale.sale_id)).sold == 3
    audit = await money_audit(flow.pool, sale.sale_id, flow.engine)
    assert audit.ok, audit.violations


async def test_wrong_passwords_lock_the_payment_password_for_a_while(flow: Flow) -> None:
    sale = await flow.sale(size=2, price_cents=100)
    order = await flow.buy(sale.sale_id, "forgetful")
    await flow.service.credit_wallet("forgetful", 500, "top-up", actor="ops")
    with pytest.raises(errors.PaymentPasswordNotSet):
        await flow.service.start_payment(order.order_id, "forgetful", balance())
    await flow.service.set_password("forgetful", PASSWORD, None)
    for left in (4, 3, 2, 1):
        with pytest.raises(errors.PaymentPasswordWrong) as wrong:
            await flow.service.start_payment(order.order_id, "forgetful", balance("000000"))
        assert wrong.value.extra["attempts_left"] == left
    with pytest.raises(errors.PaymentPasswordLocked):
        await flow.service.start_payment(order.order_id, "forgetful", balance("000000"))
    with pytest.raises(errors.PaymentPasswordLocked):  # even the right one, while locked
        await flow.service.start_payment(order.order_id, "forgetful", balance())
    assert (await flow.service.wallet("forgetful")).balance_cents == 500
    await asyncio.sleep(1.1)  # lock_s is 1 s in the tests
    payment = await flow.service.start_payment(order.order_id, "forgetful", balance())
    assert payment.status == "succeeded"


async def test_concurrent_guesses_cannot_exceed_the_attempt_limit(flow: Flow) -> None:
    await flow.service.set_password("target", PASSWORD, None)
    results = await asyncio.gather(
        *(flow.service.passwords.verify("target", f"guess{i:02d}") for i in range(20)),
        return_exceptions=True,
    )
    wrong = [r for r in results if isinstance(r, errors.PaymentPasswordWrong)]
    locked = [r for r in results if isinstance(r, errors.PaymentPasswordLocked)]
    assert len(wrong) + len(locked) == 20
    assert len(wrong) <= 4, "at most max_attempts passwords were actually tried"


async def test_changing_the_password_needs_the_old_one(flow: Flow) -> None:
    await flow.service.set_password("chg", PASSWORD, None)
    with pytest.raises(errors.PaymentPasswordWrong):
        await flow.service.set_password("chg", "13579111", None)
    with pytest.raises(errors.PaymentPasswordWrong):
        await flow.service.set_password("chg", "13579111", "999999")
    await flow.service.set_password("chg", "13579111", PASSWORD)
    await flow.service.passwords.verify("chg", "13579111")


async def test_a_free_order_still_needs_the_payment_password(flow: Flow) -> None:
    sale = await flow.sale(size=2, price_cents=0)
    order = await flow.buy(sale.sale_id, "free")
    await flow.service.set_password("free", PASSWORD, None)
    with pytest.raises(errors.PaymentPasswordWrong):
        await flow.service.start_payment(order.order_id, "free", balance("nope-nope"))
    payment = await flow.service.start_payment(order.order_id, "free", balance())
    assert payment.status == "succeeded" and payment.amount_cents == 0
    assert (await flow.engine.get_order(order.order_id)).status == "paid"  # type: ignore[union-attr]


async def test_balance_debit_for_an_order_paid_meanwhile_is_credited_back(flow: Flow) -> None:
    sale = await flow.sale(size=2, price_cents=700)
    order = await flow.buy(sale.sale_id, "both")
    await flow.service.set_password("both", PASSWORD, None)
    await flow.service.credit_wallet("both", 2000, "top-up", actor="ops")
    # Paid by another channel while the balance payment was on its way.
    real_payable = flow.service.attempts._payable_order

    async def stale_check(order_id: str, user_id: str):  # type: ignore[no-untyped-def]
        got = await real_payable(order_id, user_id)
        await flow.engine.confirm_payment(order_id, "pay_other_channel")
        return got

    flow.service.attempts._payable_order = stale_check  # type: ignore[method-assign]
    with pytest.raises(errors.OrderNotPayable):
        await flow.service.start_payment(order.order_id, "both", balance())
    flow.service.attempts._payable_order = real_payable  # type: ignore[method-assign]
    wallet = await flow.service.wallet("both")
    assert wallet.balance_cents == 2000
    assert [e.kind for e in wallet.entries] == ["reversal", "debit", "credit"]
    rows = await flow.service.payments_for_order(order.order_id)
    assert [r.status for r in rows] == ["reversed"]


async def test_admin_credit_is_idempotent_per_key(flow: Flow) -> None:
    for _ in range(3):
        wallet = await flow.service.credit_wallet(
            "idem", 250, "promo", actor="ops", idempotency_key="promo-1"
        )
    assert wallet.balance_cents == 250 and len(wallet.entries) == 1
    with pytest.raises(ValidationFailed):
        await flow.service.credit_wallet("idem", 0, "nothing", actor="ops")
