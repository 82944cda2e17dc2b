"""The demo's after-sales: one delivered order's buyer opens a ticket with a picture as
evidence, ops approve it, the money comes back and the order becomes ``refunded`` while
its token stays minted (the serial stays sold; the audit that follows agrees).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from flashsale.loadtest.demo_orders import _auth

EVIDENCE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # judged by its bytes: a PNG
WAIT_S = 30.0  # a provider's refund is confirmed by the provider first


async def approve_one(
    client: httpx.AsyncClient, order: dict[str, Any], token: str, admin: str
) -> tuple[str | None, str | None]:
    """(the story's line, a problem): ``order`` (delivered) refunded through a ticket."""
    order_id = order["order_id"]
    opened = await client.post(
        f"/v1/orders/{order_id}/after-sales",
        data={"reason": "the artwork differs from the preview"},
        files=[("evidence", ("proof.png", EVIDENCE, "image/png"))],
        headers=_auth(token),
    )
    if opened.status_code != 201:
        return None, f"after-sales ticket refused: {opened.status_code} {opened.text[:200]}"
    ticket = opened.json()["ticket_id"]
    approved = await client.post(
        f"/v1/admin/after-sales/{ticket}/approve", json={"note": "demo"}, headers=_auth(admin)
    )
    if approved.status_code != 200:
        return None, f"approving {ticket} answered {approved.status_code}: {approved.text[:200]}"
    began, status = time.monotonic(), ""
    while time.monotonic() - began < WAIT_S:
        read = (await client.get(f"/v1/orders/{order_id}", headers=_auth(token))).json()
        status = read["status"]
        if status == "refunded":
            return (
                f"after-sales: ticket {ticket} (1 PNG) approved -> order {order_id} refunded "
                f"{read['price_cents'] / 100:.2f} {read['currency']}; its token stays minted "
                "to the buyer, so its serial stays sold",
                None,
            )
        await asyncio.sleep(0.5)
    return None, f"order {order_id} is {status} {WAIT_S:.0f} s after its ticket was approved"


__all__ = ["approve_one"]
