"""The client our server uses to talk to a payment provider.

Errors are classified for the caller:

- `ProviderUnavailable`: connect error, timeout, 5xx, 408, 429. The outcome
  is unknown; try again later. Every mutating call here is idempotent
  (create per out_trade_no, close, refund per refund_no), so retrying with the
  same arguments is always safe.
- `ProviderRejected`: a 4xx with a machine-readable `code` (`trade_paid`,
  `trade_closed`, `trade_not_found`, `trade_not_paid`, `refund_exceeds_amount`,
  `refund_no_conflict`, `out_trade_no_conflict`, `validation_error`, ...).
  A definite answer: act on the code, do not retry as is.
- `ProviderProtocolError`: the answer made no sense (unexpected status,
  undecodable body). A bug or a misconfiguration: worth paging someone.

A payment whose create answer was lost is found again by calling
`create_trade` with the same out_trade_no: the provider returns the same trade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx
import msgspec

from .paysim.wire import CallbackBody
from .signing import DEFAULT_TOLERANCE_S, SIGNATURE_HEADER, verify

__all__ = [
    "CallbackNotice",
    "MalformedCallback",
    "Provider",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderRejected",
    "ProviderUnavailable",
    "Refund",
    "SimProvider",
    "Trade",
    "TradeStatus",
]

TradeStatus = Literal["pending", "succeeded", "closed"]


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    refund_no: str
    amount_cents: int
    created_at: datetime


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """A provider trade as last seen. Refunds never change `status`; see `refunded_cents`."""

    trade_no: str
    out_trade_no: str
    order_id: str
    status: TradeStatus
    amount_cents: int
    currency: str
    refunded_cents: int = 0
    pay_url: str | None = None
    paid_at: datetime | None = None
    closed_at: datetime | None = None
    refunds: tuple[Refund, ...] = ()


class CallbackNotice(CallbackBody, frozen=True, kw_only=True):
    """A verified callback.

    `notify_id` is the same on every delivery of one notice (retries and
    duplicates): process a notice once per notify_id, and answer 200 again
    when it comes back, whatever its `signature` (the header as received; a
    redelivery may carry the same one or a fresh one, both are redeliveries).
    A `pending` notice can arrive after the `succeeded` one: never move a
    payment backwards on a callback.
    """

    signed_at: int
    signature: str


class ProviderError(Exception):
    """Base of every failure talking to a provider."""


class ProviderUnavailable(ProviderError):
    """No definite answer (network, timeout, 5xx): retry later with the same arguments."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderRejected(ProviderError):
    """A definite refusal (4xx) with the provider's machine-readable code."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail


class ProviderProtocolError(ProviderError):
    """An answer outside the protocol (unexpected status, undecodable body)."""


class MalformedCallback(ValueError):
    """A correctly signed callback whose body does not parse (answer 400)."""


class Provider(Protocol):
    """What the payment service needs from any third-party provider."""

    name: str

    async def create_trade(
        self,
        out_trade_no: str,
        order_id: str,
        amount_cents: int,
        currency: str,
        notify_url: str,
        subject: str | None = None,
    ) -> Trade: ...

    async def query(self, trade_no: str) -> Trade: ...

    async def close(self, trade_no: str) -> Trade: ...

    async def refund(self, trade_no: str, refund_no: str, amount_cents: int) -> Trade: ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackNotice: ...

    async def aclose(self) -> None: ...


class _ErrorBody(msgspec.Struct, frozen=True):
    code: str = "unknown"
    detail: str = ""


_RETRYABLE_4XX = frozenset({408, 429})
_trade_decoder = msgspec.json.Decoder(Trade)
_error_decoder = msgspec.json.Decoder(_ErrorBody)
# the provider's published callback body (the simulator implements the same wire format)
_callback_decoder = msgspec.json.Decoder(CallbackBody)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; HTTP header names are not.
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class SimProvider:
    """Client of our provider simulator (`flashsale paysim`). One pooled connection set."""

    name: str = "sim"

    def __init__(
        self,
        base_url: str,
        secret: str,
        timeout_s: float = 5.0,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`secret` checks the callbacks' signatures (`FLASHSALE_PAYSIM_SECRET`).

        `timeout_s` bounds the whole call (httpx's own timeout bounds each phase
        only: a provider dripping its answer would hold us forever).
        `transport` lets tests plug in httpx.MockTransport.
        """
        self._secret = secret
        self._deadline_s = timeout_s
        self._tolerance_s = tolerance_s
        self._clock = clock
        # trust_env=False: a proxy from the environment has no business between
        # us and the provider (and would swallow loopback calls in development).
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_s,
            trust_env=False,
            transport=transport,
            headers={"User-Agent": "flashsale-payments/1", "Accept": "application/json"},
        )

    async def create_trade(
        self,
        out_trade_no: str,
        order_id: str,
        amount_cents: int,
        currency: str,
        notify_url: str,
        subject: str | None = None,
    ) -> Trade:
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "order_id": order_id,
            "amount_cents": amount_cents,
            "currency": currency,
            "notify_url": notify_url,
        }
        if subject is not None:
            body["subject"] = subject
        return await self._call("POST", "/trades", body)

    async def query(self, trade_no: str) -> Trade:
        return await self._call("GET", f"/trades/{quote(trade_no, safe='')}")

    async def close(self, trade_no: str) -> Trade:
        return await self._call("POST", f"/trades/{quote(trade_no, safe='')}/close")

    async def refund(self, trade_no: str, refund_no: str, amount_cents: int) -> Trade:
        body = {"refund_no": refund_no, "amount_cents": amount_cents}
        return await self._call("POST", f"/trades/{quote(trade_no, safe='')}/refunds", body)

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackNotice:
        """Check the signature over the raw body, then parse it.

        Raises `signing.SignatureError` (answer 401; `.reason` is missing,
        malformed, stale or bad_signature) or `MalformedCallback` (answer 400).
        Replay detection (remembering `signature`) is the caller's job.
        """
        header = _header(headers, SIGNATURE_HEADER)
        signed_at = verify(header, body, self._secret, int(self._clock()), self._tolerance_s)
        signature = (header or "").strip()  # never empty here: verify() refuses that
        try:
            parsed = _callback_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise MalformedCallback(str(exc)) from exc
        return CallbackNotice(
            **msgspec.structs.asdict(parsed),
            signed_at=signed_at,
            signature=signature,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Trade:
        content = None if body is None else msgspec.json.encode(body)
        headers = None if content is None else {"Content-Type": "application/json"}
        try:
            async with asyncio.timeout(self._deadline_s):
                response = await self._client.request(
                    method, path, content=content, headers=headers
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ProviderUnavailable(f"{method} {path}: timed out ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{method} {path}: {exc!r}") from exc
        status = response.status_code
        if status >= 500 or status in _RETRYABLE_4XX:
            raise ProviderUnavailable(f"{method} {path}: HTTP {status}", status)
        if 400 <= status < 500:
            try:
                error = _error_decoder.decode(response.content)
            except msgspec.DecodeError:
                error = _ErrorBody(detail=response.text[:200])
            raise ProviderRejected(status, error.code, error.detail)
        if status not in (200, 201):
            raise ProviderProtocolError(f"{method} {path}: unexpected HTTP {status}")
        try:
            return _trade_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ProviderProtocolError(f"{method} {path}: bad trade body: {exc}") from exc
