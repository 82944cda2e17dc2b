"""After-sales tickets over the real app: evidence judged by its bytes, one open ticket
per order, reads, the window's start.

Tickets are for delivered orders; here the ticket desk is driven past eligibility with an
AfterSales whose eligibility takes paid orders (every other part is the real one). The
decisions and the refund of really delivered orders (minted on a real chain node) are in
tests/chain/test_aftersales.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from flashsale.orders.aftersales import AfterSales, Upload
from flashsale.orders.errors import OrderNotEligible, TicketAlreadyOpen
from flashsale.payments.service import PaymentService
from tests.api.helpers import problem

from .conftest import ADMIN, Client, buy_with_balance

User = Callable[[str], tuple[str, dict[str, str]]]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 32


async def _paid_order(
    client: Client, make_sale: Any, user: User, name: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    sale = await make_sale(price_cents=1200)
    buyer, headers = user(name)
    order = await buy_with_balance(client, sale["sale_id"], buyer, headers, 5000)
    return buyer, headers, order


async def test_bad_tickets_get_their_codes_and_store_nothing(
    client: Client, make_sale: Any, user: User, pool: asyncpg.Pool
) -> None:
    _, headers, order = await _paid_order(client, make_sale, user, "bad-ticket")
    path = f"/v1/orders/{order['order_id']}/after-sales"
    reason = {"reason": "the token never arrived"}
    cases: list[tuple[Any, int, str]] = [
        (
            [("evidence", (f"f{i}.png", PNG, "image/png")) for i in range(6)],
            422,
            "validation_error",
        ),
        (
            [("evidence", ("big.png", PNG + b"\x00" * (6 * 1024 * 1024), "image/png"))],
            413,
            "payload_too_large",
        ),
        (
            [("evidence", ("forged.png", b"<html>not an image</html>", "image/png"))],
            415,
            "unsupported_media_type",
        ),
    ]
    for files, status, code in cases:
        problem(await client.post(path, data=reason, files=files, headers=headers), status, code)
    problem(
        await client.post(
            path, data={}, headers=headers, files=[("evidence", ("a.png", PNG, "image/png"))]
        ),
        422,
        "validation_error",
    )
    for bad in ("x" * 2001, "\x0c \t", "a\x00b"):  # too long, only blanks, a NUL
        problem(
            await client.post(
                path,
                data={"reason": bad},
                files=[("evidence", ("a.png", PNG, "image/png"))],
                headers=headers,
            ),
            422,
            "validation_error",
        )
    problem(
        await client.post(path, json={"reason": "json"}, headers=headers),
        415,
        "unsupported_media_type",
    )
    # a good ticket on an order that is only paid: not eligible yet (delivered orders only)
    good = [("evidence", ("a.png", PNG, "image/png"))]
    refused = problem(
        await client.post(path, data=reason, files=good, headers=headers), 409, "order_not_eligible"
    )
    assert refused["order_status"] == "paid", refused
    _, stranger = user("stranger")
    problem(
        await client.post(path, data=reason, files=good, headers=stranger), 404, "order_not_found"
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM after_sales_tickets WHERE order_id = $1", order["order_id"]
        )
        == 0
    )


async def test_a_ticket_keeps_its_evidence_and_is_one_per_order(
    client: Client, make_sale: Any, user: User, service: PaymentService, pool: asyncpg.Pool
) -> None:
    buyer, headers, order = await _paid_order(client, make_sale, user, "evidence")
    desk = AfterSales(service, eligible=frozenset({"paid"}))
    ticket = await desk.open(
        order["order_id"], buyer, "wrong art", [Upload(PNG), Upload(PDF), Upload(WEBP), Upload(PNG)]
    )
    assert ticket.status == "open" and ticket.reason == "wrong art"
    assert [e.content_type for e in ticket.evidence] == [
        "image/png",
        "application/pdf",
        "image/webp",
        "image/png",
    ]
    assert ticket.evidence[0].sha256 == ticket.evidence[3].sha256
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM evidence_blobs WHERE sha256 = $1", ticket.evidence[0].sha256
        )
        == 1
    )
    with pytest.raises(TicketAlreadyOpen):
        await desk.open(order["order_id"], buyer, "again", [])
    read = await client.get(f"/v1/after-sales/{ticket.ticket_id}", headers=headers)
    assert read.status_code == 200 and read.json()["evidence"][1]["bytes"] == len(PDF)
    assert (
        await client.get(f"/v1/after-sales/{ticket.ticket_id}", headers=ADMIN)
    ).status_code == 200
    _, stranger = user("nosy")
    problem(
        await client.get(f"/v1/after-sales/{ticket.ticket_id}", headers=stranger),
        404,
        "ticket_not_found",
    )
    file = await client.get(
        f"/v1/after-sales/{ticket.ticket_id}/evidence/{ticket.evidence[1].evidence_id}",
        headers=headers,
    )
    assert file.status_code == 200 and file.content == PDF
    assert file.headers["content-type"].startswith("application/pdf")
    problem(
        await client.get(
            f"/v1/after-sales/{ticket.ticket_id}/evidence/{ticket.evidence[1].evidence_id}",
            headers=stranger,
        ),
        404,
        "ticket_not_found",
    )
    listed = (await client.get("/v1/admin/after-sales?status=open", headers=ADMIN)).json()
    assert ticket.ticket_id in {t["ticket_id"] for t in listed}


async def test_the_window_runs_from_the_delivery(
    client: Client, make_sale: Any, user: User, service: PaymentService, pool: asyncpg.Pool
) -> None:
    buyer, _, order = await _paid_order(client, make_sale, user, "late")
    # the deliverer's record of the token confirmed on chain eight days ago
    await pool.execute(
        "INSERT INTO deliveries (order_id, sale_id, user_id, token_id, status, address, nonce,"
        " confirmed_at) VALUES ($1, $2, $3, 1, 'confirmed', $4, 0, now() - interval '8 days')",
        order["order_id"],
        order["sale_id"],
        buyer,
        "0x" + "ab" * 20,
    )
    desk = AfterSales(service, eligible=frozenset({"paid"}))
    with pytest.raises(OrderNotEligible):
        await desk.open(order["order_id"], buyer, "too late", [])
    await pool.execute(
        "UPDATE deliveries SET confirmed_at = now() - interval '6 days' WHERE order_id = $1",
        order["order_id"],
    )
    assert (await desk.open(order["order_id"], buyer, "in time", [])).status == "open"
