"""The provider simulator, run as a real process, and the client our server uses for it."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from flashsale.devservers import free_port
from flashsale.payments import signing
from flashsale.payments.paysim.control import PaysimControl
from flashsale.payments.paysim.faults import Faults, plan_delivery, rng_for
from flashsale.payments.paysim.state import SimError
from flashsale.payments.provider import (
    MalformedCallback,
    ProviderProtocolError,
    ProviderRejected,
    ProviderUnavailable,
    SimProvider,
    Trade,
)
from flashsale.settings import Settings

from .paysim_harness import (
    PAYSIM_CONFIG,
    SCHEDULE_S,
    SECRET,
    PaysimProcess,
    Receiver,
)

CALLBACK_FIELDS = {
    "notify_id",
    "trade_no",
    "out_trade_no",
    "order_id",
    "status",
    "amount_cents",
    "currency",
    "paid_at",
    "notify_time",
}


# The simulator's fixtures live here, in its only test module.
@pytest.fixture(scope="session")
def paysim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaysimProcess]:
    with PaysimProcess(PAYSIM_CONFIG, tmp_path_factory.mktemp("paysim") / "paysim.log") as proc:
        yield proc


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def provider(paysim: PaysimProcess) -> AsyncIterator[SimProvider]:
    client = SimProvider(paysim.url, SECRET, timeout_s=2.0)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control(paysim: PaysimProcess) -> AsyncIterator[PaysimControl]:
    client = PaysimControl(paysim.url)
    yield client
    await client.aclose()


def _key() -> str:
    return uuid.uuid4().hex[:12]


async def _new_trade(
    provider: SimProvider, receiver: Receiver, key: str, amount_cents: int = 9900
) -> Trade:
    return await provider.create_trade(
        out_trade_no=f"pay-{key}",
        order_id=f"ord-{key}",
        amount_cents=amount_cents,
        currency="CNY",
        notify_url=receiver.notify_url(key),
    )


# -- signing ------------------------------------------------------------------


def test_sign_verify_roundtrip() -> None:
    body = b'{"notify_id":"n1","status":"succeeded"}'
    header = signing.sign(body, SECRET, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify(header, body, SECRET, now=1_700_000_000) == 1_700_000_000
    # Exactly at the tolerance edge, either side, is still accepted.
    assert signing.verify(header, body, SECRET, now=1_700_000_300) == 1_700_000_000
    assert signing.verify(header, body, SECRET, now=1_699_999_700) == 1_700_000_000
    # Key rotation: any one matching v1 entry is enough; unknown schemes are ignored.
    other = signing.sign(body, "old-secret", 1_700_000_000).split("v1=")[1]
    rotated = f"t=1700000000,v1={other},v1={header.split('v1=')[1]},v2=zzz"
    assert signing.verify(rotated, body, SECRET, now=1_700_000_000) == 1_700_000_000


def test_paysim_secret_falls_back_to_dev_default_in_dev_mode_only() -> None:
    def secret(**env: str) -> str | None:
        return Settings.from_env(env).payments.paysim_secret

    dev = {"FLASHSALE_ENV": "dev"}
    assert secret(**dev) == secret(**dev, FLASHSALE_PAYSIM_SECRET="") == signing.DEV_SECRET
    assert secret(**dev, FLASHSALE_PAYSIM_SECRET="s3") == "s3"
    assert secret() is None and secret(FLASHSALE_ENV="prod") is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("garbage", "malformed"),
        ("t=abc,v1=00", "malformed"),
        ("t=-5,v1=00", "malformed"),
        ("v1=00", "malformed"),
        ("t=1700000000", "malformed"),
        ("t=1700000000,t=1700000000,v1=00", "malformed"),
        ("t=1700000000,v1=", "malformed"),
        ("t=1700000000,v1=00", "bad_signature"),
        ("t=1700000000,v1=é", "bad_signature"),
    ],
)
def test_verify_rejects(header: str | None, reason: str) -> None:
    with pytest.raises(signing.SignatureError) as info:
        signing.verify(header, b"{}", SECRET, now=1_700_000_000)
    assert info.value.reason == reason


def test_verify_rejects_tampering_wrong_secret_and_stale() -> None:
    body = b'{"amount_cents":9900}'
    header = signing.sign(body, SECRET, 1_700_000_000)
    cases = [
        (header, b'{"amount_cents":1}', SECRET, 1_700_000_000, "bad_signature"),
        (header, body, "another-secret", 1_700_000_000, "bad_signature"),
        # The timestamp is under the MAC: re-dating a captured header breaks it.
        (
            header.replace("t=1700000000", "t=1700000100"),
            body,
            SECRET,
            1_700_000_100,
            "bad_signature",
        ),
        (header, body, SECRET, 1_700_000_301, "stale"),
        (header, body, SECRET, 1_699_999_699, "stale"),
    ]
    for hdr, payload, secret, now, reason in cases:
        with pytest.raises(signing.SignatureError) as info:
            signing.verify(hdr, payload, secret, now=now)
        assert info.value.reason == reason


def test_verify_callback_needs_a_parseable_body() -> None:
    provider = SimProvider("http://127.0.0.1:9", SECRET)
    body = b'{"notify_id": "n1"}'
    headers = {"x-paysim-signature": signing.sign(body, SECRET, int(time.time()))}
    with pytest.raises(MalformedCallback):
        provider.verify_callback(headers, body)
    with pytest.raises(signing.SignatureError) as info:
        provider.verify_callback({}, body)
    assert info.value.reason == "missing"


def test_fault_draws_are_reproducible_per_payment() -> None:
    faults = Faults(drop_rate=0.5, duplicate_rate=0.5)
    ids = [f"pay-{i}" for i in range(64)]
    first = [plan_delivery(faults, rng_for(7, i, "notify")) for i in ids]
    again = [plan_delivery(faults, rng_for(7, i, "notify")) for i in reversed(ids)]
    assert first == list(reversed(again))
    other_seed = [plan_delivery(faults, rng_for(8, i, "notify")) for i in ids]
    assert first != other_seed
    assert 0 < sum(p.drop for p in first) < len(ids)


# -- trades and callbacks -------------------------------------------------------


async def test_create_pay_and_signed_callback(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    trade = await _new_trade(provider, receiver, key)
    assert trade.status == "pending"
    assert (trade.out_trade_no, trade.order_id, trade.amount_cents, trade.refunded_cents) == (
        f"pay-{key}",
        f"ord-{key}",
        9900,
        0,
    )
    assert trade.pay_url is not None and trade.pay_url.endswith(f"/trades/{trade.trade_no}/pay")

    # Same out_trade_no: same trade (how a lost create answer is recovered).
    assert (await _new_trade(provider, receiver, key)).trade_no == trade.trade_no
    with pytest.raises(ProviderRejected) as conflict:
        await _new_trade(provider, receiver, key, amount_cents=1)
    assert (conflict.value.status, conflict.value.code) == (409, "out_trade_no_conflict")

    paid = await control.pay(trade.pay_url)
    assert paid.status == "succeeded" and paid.paid_at is not None
    (delivery,) = await receiver.wait_for(key, 1)
    assert delivery.headers["content-type"] == "application/json"
    assert set(delivery.json()) == CALLBACK_FIELDS

    notice = provider.verify_callback(delivery.headers, delivery.body)
    assert notice.status == "succeeded"
    assert (notice.trade_no, notice.out_trade_no, notice.order_id) == (
        trade.trade_no,
        f"pay-{key}",
        f"ord-{key}",
    )
    assert (notice.amount_cents, notice.currency, notice.paid_at) == (9900, "CNY", paid.paid_at)
    assert abs(notice.signed_at - time.time()) < 5
    assert notice.signature == delivery.headers["x-paysim-signature"]

    # Paying again is a no-op: no second payment, no second callback.
    assert (await control.pay(trade.pay_url)).paid_at == paid.paid_at
    await control.wait_idle()
    assert len(receiver.deliveries[key]) == 1
    queried = await provider.query(trade.trade_no)
    assert (queried.status, queried.amount_cents, queried.refunded_cents) == ("succeeded", 9900, 0)


async def test_callback_retried_until_200(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    receiver.fail_first(key, 500, 500)
    trade = await _new_trade(provider, receiver, key)
    before = await control.stats()
    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    deliveries = await receiver.wait_for(key, 3)
    after = await control.wait_idle()

    assert [d.status for d in deliveries] == [500, 500, 200]
    notices = [provider.verify_callback(d.headers, d.body) for d in deliveries]
    assert len({n.notify_id for n in notices}) == 1
    # Every attempt is freshly signed, so a receiver's replay guard never trips on a retry.
    assert len({n.signature for n in notices}) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    assert all(gap >= expected - 0.05 for gap, expected in zip(gaps, SCHEDULE_S[1:], strict=False))
    assert after.callbacks_sent - before.callbacks_sent == 3
    assert after.callbacks_failed - before.callbacks_failed == 2
    assert after.callbacks_acked - before.callbacks_acked == 1
    assert len(receiver.deliveries[key]) == 3


async def test_callback_stops_after_schedule(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    receiver.fail_first(key, *([503] * (len(SCHEDULE_S) + 3)))
    trade = await _new_trade(provider, receiver, key)
    before = await control.stats()
    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    await receiver.wait_for(key, len(SCHEDULE_S))
    after = await control.wait_idle()
    assert len(receiver.deliveries[key]) == len(SCHEDULE_S)
    assert after.notices_given_up - before.notices_given_up == 1
    assert after.callbacks_acked == before.callbacks_acked


async def test_dropped_callback_still_queryable(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    trade = await _new_trade(provider, receiver, key)
    view = await control.set_trade_faults(trade.trade_no, Faults(drop_rate=1.0))
    assert view.source == "trade"
    before = await control.stats()
    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    after = await control.wait_idle()
    assert after.callbacks_dropped - before.callbacks_dropped == 1
    assert after.callbacks_sent == before.callbacks_sent
    assert receiver.deliveries[key] == []
    # The lost callback (掉单): only an active query learns the payment happened.
    assert (await provider.query(trade.trade_no)).status == "succeeded"


async def test_duplicate_callback_same_notify_id(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    trade = await _new_trade(provider, receiver, key)
    await control.set_trade_faults(trade.trade_no, Faults(duplicate_rate=1.0))
    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    first, second = await receiver.wait_for(key, 2)
    await control.wait_idle()
    assert first.status == second.status == 200
    a = provider.verify_callback(first.headers, first.body)
    b = provider.verify_callback(second.headers, second.body)
    assert a.notify_id == b.notify_id and a.status == b.status == "succeeded"
    assert a.signature != b.signature
    assert second.at - first.at >= 0.15
    assert len(receiver.deliveries[key]) == 2


async def test_out_of_order_stale_pending_after_success(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    trade = await _new_trade(provider, receiver, key)
    await control.set_trade_faults(trade.trade_no, Faults(out_of_order=True))
    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    first, second = await receiver.wait_for(key, 2)
    await control.wait_idle()
    success = provider.verify_callback(first.headers, first.body)
    stale = provider.verify_callback(second.headers, second.body)
    assert (success.status, stale.status) == ("succeeded", "pending")
    assert stale.paid_at is None and stale.notify_id != success.notify_id
    assert stale.trade_no == success.trade_no
    assert len(receiver.deliveries[key]) == 2


async def test_delayed_first_delivery(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    key = _key()
    trade = await _new_trade(provider, receiver, key)
    await control.set_trade_faults(trade.trade_no, Faults(delay_s=0.6))
    assert trade.pay_url is not None
    paid_at = time.monotonic()
    await control.pay(trade.pay_url)
    (delivery,) = await receiver.wait_for(key, 1)
    assert delivery.at - paid_at >= 0.55


async def test_global_and_per_trade_faults(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    trade = await _new_trade(provider, receiver, _key())
    try:
        assert await control.set_faults(Faults(query_fail_rate=1.0)) == Faults(query_fail_rate=1.0)
        assert await control.faults() == Faults(query_fail_rate=1.0)
        assert (await control.trade_faults(trade.trade_no)).source == "global"
        with pytest.raises(ProviderUnavailable):
            await provider.query(trade.trade_no)
        # A trade's own faults replace the global set for it.
        await control.set_trade_faults(trade.trade_no, Faults())
        assert (await provider.query(trade.trade_no)).status == "pending"
        view = await control.set_trade_faults(trade.trade_no, None)
        assert view.source == "global"
        with pytest.raises(ProviderUnavailable):
            await provider.query(trade.trade_no)
    finally:
        await control.set_faults(Faults())
    with pytest.raises(SimError) as bad:
        await control.set_faults(Faults(drop_rate=1.5))
    assert (bad.value.status, bad.value.code) == (400, "validation_error")


# -- close and refund -------------------------------------------------------------


async def test_close_pending_and_paid(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    pending = await _new_trade(provider, receiver, _key())
    closed = await provider.close(pending.trade_no)
    assert closed.status == "closed" and closed.closed_at is not None
    assert (await provider.close(pending.trade_no)).closed_at == closed.closed_at
    assert pending.pay_url is not None
    with pytest.raises(SimError) as late:
        await control.pay(pending.pay_url)
    assert (late.value.status, late.value.code) == (409, "trade_closed")
    assert (await provider.query(pending.trade_no)).status == "closed"

    paid = await _new_trade(provider, receiver, _key())
    assert paid.pay_url is not None
    await control.pay(paid.pay_url)
    with pytest.raises(ProviderRejected) as refused:
        await provider.close(paid.trade_no)
    assert (refused.value.status, refused.value.code) == (409, "trade_paid")
    assert (await provider.query(paid.trade_no)).status == "succeeded"


async def test_refund_idempotent_and_bounded(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    trade = await _new_trade(provider, receiver, _key(), amount_cents=100)
    with pytest.raises(ProviderRejected) as unpaid:
        await provider.refund(trade.trade_no, "r1", 40)
    assert (unpaid.value.status, unpaid.value.code) == (409, "trade_not_paid")

    assert trade.pay_url is not None
    await control.pay(trade.pay_url)
    assert (await provider.refund(trade.trade_no, "r1", 40)).refunded_cents == 40
    assert (await provider.refund(trade.trade_no, "r1", 40)).refunded_cents == 40
    with pytest.raises(ProviderRejected) as conflict:
        await provider.refund(trade.trade_no, "r1", 50)
    assert conflict.value.code == "refund_no_conflict"
    with pytest.raises(ProviderRejected) as too_much:
        await provider.refund(trade.trade_no, "r2", 61)
    assert too_much.value.code == "refund_exceeds_amount"
    full = await provider.refund(trade.trade_no, "r2", 60)
    assert full.refunded_cents == 100
    assert [(r.refund_no, r.amount_cents) for r in full.refunds] == [("r1", 40), ("r2", 60)]
    with pytest.raises(ProviderRejected):
        await provider.refund(trade.trade_no, "r3", 1)
    # A retried refund still answers once the trade is fully refunded.
    assert (await provider.refund(trade.trade_no, "r1", 40)).refunded_cents == 100
    queried = await provider.query(trade.trade_no)
    assert (queried.status, queried.refunded_cents) == ("succeeded", 100)
    with pytest.raises(ProviderRejected) as invalid:
        await provider.refund(trade.trade_no, "r4", 0)
    assert (invalid.value.status, invalid.value.code) == (400, "validation_error")


# -- client error classification ---------------------------------------------------


async def test_query_failure_is_unavailable(
    provider: SimProvider, control: PaysimControl, receiver: Receiver
) -> None:
    trade = await _new_trade(provider, receiver, _key())
    await control.set_trade_faults(trade.trade_no, Faults(query_fail_rate=1.0))
    with pytest.raises(ProviderUnavailable) as info:
        await provider.query(trade.trade_no)
    assert info.value.status == 503
    # Only queries fail: the trade can still be closed.
    assert (await provider.close(trade.trade_no)).status == "closed"


async def test_slow_query_times_out_as_unavailable(
    paysim: PaysimProcess, control: PaysimControl, receiver: Receiver, provider: SimProvider
) -> None:
    trade = await _new_trade(provider, receiver, _key())
    await control.set_trade_faults(trade.trade_no, Faults(query_delay_s=1.5))
    impatient = SimProvider(paysim.url, SECRET, timeout_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await impatient.query(trade.trade_no)
        assert time.monotonic() - started < 1.4  # well before the 1.5 s answer
    finally:
        await impatient.aclose()
    # A patient client gets the answer.
    assert (await provider.query(trade.trade_no)).status == "pending"


async def test_unknown_trade_is_rejected(provider: SimProvider) -> None:
    with pytest.raises(ProviderRejected) as info:
        await provider.query("sim-no-such-trade")
    assert (info.value.status, info.value.code) == (404, "trade_not_found")


async def test_connection_refused_is_unavailable() -> None:
    nobody = SimProvider(f"http://127.0.0.1:{free_port()}", SECRET, timeout_s=1.0)
    try:
        with pytest.raises(ProviderUnavailable):
            await nobody.query("anything")
    finally:
        await nobody.aclose()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, b"", ProviderUnavailable),
        (502, b"<html>bad gateway</html>", ProviderUnavailable),
        (403, b"<html>forbidden</html>", ProviderRejected),
        (302, b"", ProviderProtocolError),
        (200, b"<html>captive portal</html>", ProviderProtocolError),
        (200, b'{"trade_no": "t1"}', ProviderProtocolError),
    ],
)
async def test_answers_are_classified(status: int, body: bytes, error: type[Exception]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    client = SimProvider("http://paysim.invalid", SECRET, transport=transport)
    try:
        with pytest.raises(error):
            await client.query("t1")
    finally:
        await client.aclose()
