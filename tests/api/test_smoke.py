from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_create_buy_read(
    client: AsyncTestClient[Litestar], make_sale: Any, buyer: Any
) -> None:
    sale = await make_sale(sale_id="drop-1")
    assert sale["sale_id"] == "drop-1"
    r = await client.post("/v1/sales/drop-1/purchase", json={}, headers=buyer("u1"))
    assert r.status_code == 201, r.text
    print(r.json())
    r2 = await client.get(f"/v1/orders/{r.json()['order_id']}", headers=buyer("u1"))
    print(r2.status_code, r2.text)
    r3 = await client.post("/v1/sales/drop-1/purchase", json={}, headers=buyer("u1"))
    print(r3.status_code, r3.headers["content-type"], r3.text)
    r4 = await client.post("/v1/sales/drop-1/purchase", json={"x": 1}, headers=buyer("u2"))
    print(r4.status_code, r4.headers["content-type"], r4.text)
    r5 = await client.post("/v1/sales/drop-1/purchase", content=b"{", headers=buyer("u2"))
    print(r5.status_code, r5.text)
    r6 = await client.get("/nope")
    print(r6.status_code, r6.headers["content-type"], r6.text)
    r7 = await client.delete("/health")
    print(r7.status_code, r7.headers["content-type"], r7.text)
    r8 = await client.get("/health")
    print(r8.status_code, r8.text)
    r9 = await client.get("/metrics")
    print(r9.status_code, r9.text[-600:])
    r10 = await client.get("/schema/openapi.json")
    print(r10.status_code, len(r10.text))
    r11 = await client.post("/v1/sales/drop-1/purchase", headers=buyer("u3"))
    print(r11.status_code, r11.text)
