"""Failure classes of delivery on chain, as the payment flow has its own.

Same severities as ``payments/failures.py``: ``page`` (a token may be wrong or
stuck: a human looks now), ``alert`` (expected under faults; page on the rate)
and ``log``. Alerting ones are counted in
``flashsale_delivery_alerts_total{class=...}`` and stored in ``delivery_alerts``;
every report is one log line ``delivery_failure {json}``.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from prometheus_client import Counter

from flashsale.payments.failures import FailureInfo, report_in

log = logging.getLogger("flashsale.chain")


class Failure(StrEnum):
    CHAIN_UNREACHABLE = "chain_unreachable"
    CHAIN_RESET = "chain_reset"
    WRONG_OWNER = "token_minted_to_other"
    TOKEN_TAKEN = "token_already_delivered"
    MINT_FAILED = "mint_failed"
    DEPLOY_FAILED = "deploy_failed"
    NONCE_TAKEN = "nonce_taken"
    TX_REFUSED = "tx_refused"
    TX_DROPPED = "tx_dropped"
    TX_REORGED = "tx_reorged"
    GAS_BUMPED = "gas_bumped"
    ALREADY_MINTED = "already_minted"
    ORDER_NOT_PAID = "order_not_paid"


TABLE: dict[Failure, FailureInfo] = {
    Failure.CHAIN_RESET: FailureInfo(
        "page",
        "The node at FLASHSALE_CHAIN_URL has another genesis block than the one our records "
        "were made on (a development node restarted, or the URL changed). The deliverer stops.",
        "Point FLASHSALE_CHAIN_URL back at the right chain; a reset development chain needs a "
        "fresh database.",
    ),
    Failure.WRONG_OWNER: FailureInfo(
        "page",
        "A token we were to mint is owned by another address than the buyer's. The delivery "
        "fails; nothing is minted again.",
        "Find the transaction that minted it; the minter key may have leaked.",
    ),
    Failure.TOKEN_TAKEN: FailureInfo(
        "page",
        "A paid order's token is already held by another order's live delivery (a serial sold "
        "twice, or resold after delivery). The order's delivery fails.",
        "Check both orders; refund one of them.",
    ),
    Failure.MINT_FAILED: FailureInfo(
        "page",
        "A mint reverted three times and the token is still not minted. The delivery fails.",
        "Read the revert reason from the node; check the contract and the minter key.",
    ),
    Failure.DEPLOY_FAILED: FailureInfo(
        "page",
        "A sale's contract deployment reverted. Its deliveries wait.",
        "Check the minter's balance and the node's gas limit; delete the sale_contracts row "
        "to deploy again.",
    ),
    Failure.CHAIN_UNREACHABLE: FailureInfo(
        "alert",
        "The node did not answer (down or hanging); deliveries wait and resume by themselves.",
        "Page when it lasts minutes: check the node.",
    ),
    Failure.NONCE_TAKEN: FailureInfo(
        "alert",
        "A nonce we had signed for was used by a transaction that is not ours (the key is used "
        "elsewhere). The job is signed again with a new nonce, after checking the chain.",
        "Make sure nothing else sends from the minter's key.",
    ),
    Failure.TX_REFUSED: FailureInfo(
        "alert",
        "The node refused a transaction for a reason we do not know; it is retried.",
        "Read the message in the log line.",
    ),
    Failure.TX_DROPPED: FailureInfo(
        "log",
        "A sent transaction vanished from the node (evicted, node restarted): rebroadcast.",
        "Nothing.",
    ),
    Failure.TX_REORGED: FailureInfo(
        "log",
        "A mined transaction's block left the chain before enough confirmations: it waits to "
        "be mined again (rebroadcast).",
        "Nothing; frequent ones mean FLASHSALE_CHAIN_CONFIRMATIONS is too low.",
    ),
    Failure.GAS_BUMPED: FailureInfo(
        "log",
        "A transaction waited too long unmined: signed again with higher fees, same nonce.",
        "Nothing; at FLASHSALE_CHAIN_MAX_FEE_GWEI it is not raised further.",
    ),
    Failure.ALREADY_MINTED: FailureInfo(
        "log",
        "A token was found minted to its buyer before a resubmission (a transaction that "
        "landed while we thought it failed): delivered, not minted again.",
        "Nothing.",
    ),
    Failure.ORDER_NOT_PAID: FailureInfo(
        "log",
        "An order stopped being paid (cancelled for a refund) before its delivery started: "
        "nothing is minted.",
        "Nothing.",
    ),
}

ALERTS = Counter(
    "flashsale_delivery_alerts_total",
    "Delivery failures of an alerting class (severity page or alert)",
    ["class"],
)


def report(failure: Failure, **fields: Any) -> dict[str, Any]:
    """Count (when alerting) and log one structured line; returns the logged record."""
    return report_in("delivery_failure", failure.value, TABLE[failure], ALERTS, log, fields)


__all__ = ["ALERTS", "TABLE", "Failure", "report"]
