"""The PaymentService and its providers, built from the ``Settings``.

One construction for every process that runs the payment flow: the API (one
service per worker, ``api/plugin.py``), ``flashsale timers`` and the
``flashsale payments ...`` commands (``payments/cli.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses

import asyncpg

from flashsale.engine.engine import Engine
from flashsale.payments.provider import Provider, SimProvider
from flashsale.payments.service import PaymentService, PaymentSettings
from flashsale.payments.settlement import BillPaymentsFactory
from flashsale.settings import ConfigError, Settings

__all__ = [
    "PROVIDER_URLS",
    "close_providers",
    "payment_service",
    "payment_settings_from",
    "providers_from",
]


# The variable that tells a process where each provider is (a refund goes back through it).
PROVIDER_URLS = {"sim": "FLASHSALE_PAYSIM_URL"}


def providers_from(settings: Settings) -> dict[str, Provider]:
    """``sim`` when ``FLASHSALE_PAYSIM_URL`` is set; its callbacks need the signing secret."""
    payments = settings.payments
    if not payments.paysim_url:
        return {}
    if not payments.paysim_secret:
        raise ConfigError("FLASHSALE_PAYSIM_SECRET", "is not set (the sim provider needs it)")
    return {
        "sim": SimProvider(
            payments.paysim_url, payments.paysim_secret, timeout_s=payments.provider_timeout_s
        )
    }


def payment_settings_from(settings: Settings) -> PaymentSettings:
    """The flow's timings; callbacks to ``FLASHSALE_PUBLIC_URL`` when set (the API
    otherwise fills in its own address, see ``AppState.payment_service``)."""
    payments = settings.payments
    knobs = PaymentSettings(
        callback_window_s=payments.callback_window_s,
        query_backoff_s=payments.query_backoff_s,
        query_backoff_max_s=payments.query_backoff_max_s,
        expiry_grace_s=payments.expiry_grace_s,
        concurrency=payments.concurrency,
    )
    if settings.api.public_url:
        return dataclasses.replace(knobs, public_url=settings.api.public_url)
    return knobs


def payment_service(
    settings: Settings, pool: asyncpg.Pool, engine: Engine, bills: BillPaymentsFactory | None
) -> PaymentService:
    """The flow on this process's pool and engine, ``bills`` settling payments of bills
    (``orders.bill_settlement.BillSettlement``, handed in from above: orders sits over
    payments); close with ``close_providers``."""
    return PaymentService(
        pool, engine, providers_from(settings), payment_settings_from(settings), bills=bills
    )


async def close_providers(service: PaymentService) -> None:
    for provider in service.providers.values():
        with contextlib.suppress(Exception):
            await provider.aclose()
