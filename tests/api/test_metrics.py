"""/metrics: every series the API exports moves when the API works.

A purchase, a refusal (Redis' sold_out and the worker's memory of it), a wallet
payment, a forged provider callback and a rate-limited request; then each
``flashsale_*`` series must have moved. A series exported and never recorded fails here.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import defaultdict

from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from flashsale.api.app import create_app
from flashsale.api.metrics import HTTP_REQUESTS, HTTP_SECONDS
from flashsale.devservers import free_port
from flashsale.settings import PaymentsSettings

from .conftest import app_settings, bearer
from .test_wired import _paid_order

Client = AsyncTestClient[Litestar]
ADMIN = bearer("ops-m", admin=True)
Samples = dict[str, float]


def scrape(text: str) -> dict[str, Samples]:
    """Family name -> {sample name and labels: value}, for the flashsale_* families."""
    found: dict[str, Samples] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name.startswith("flashsale_"):
            found[family.name] = {}  # a labelled series never recorded has no samples
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[family.name][f"{sample.name}{{{labels}}}"] = sample.value
    return found


def api_families() -> set[str]:
    """The families an API process exports: its modules' and the scrape-time gauges.

    Read in a fresh interpreter: this one has also imported the workers' modules
    (the deliverer's alert counter, say), which the API never loads."""
    code = (
        "import sys; from flashsale.api import app, metrics; "
        "sys.stdout.write(metrics.exposition([])[0].decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(scrape(text))


def moved(before: Samples, after: Samples) -> list[str]:
    return [key for key, value in after.items() if value != before.get(key, 0.0)]


async def test_every_series_moves(
    redis_url: str, migrated_database_url: str, namespace: str, engine: object
) -> None:
    sale_id = f"met-{namespace}"
    settings = app_settings(redis_url, namespace, database_url=migrated_database_url)
    # the simulator's callbacks are checked without it running (only its address is known)
    payments = PaymentsSettings(
        paysim_url=f"http://127.0.0.1:{free_port()}", paysim_secret="s" * 32
    )
    settings = dataclasses.replace(settings, payments=payments)
    async with AsyncTestClient(app=create_app(settings)) as client:
        before = scrape((await client.get("/metrics")).text)
        body = {"sale_id": sale_id, "name": "metrics", "serials": {"range": [1, 1]}}
        body["price_cents"] = 990
        assert (await client.post("/v1/sales", json=body, headers=ADMIN)).status_code == 201
        await _paid_order(client, sale_id, "metrics-payer")  # a purchase and a wallet payment
        for user in ("late-1", "late-2"):  # sold_out from Redis, then from memory
            r = await client.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=bearer(user))
            assert r.status_code == 409, r.text
        assert (await client.get("/no/such/page")).status_code == 404
        forged = {"X-Paysim-Signature": "t=1,v1=00"}  # a payment alert: bad_signature
        r = await client.post("/v1/payments/callbacks/sim", content=b"{}", headers=forged)
        assert r.status_code == 401, r.text

    limited = app_settings(redis_url, namespace, ip_rate_per_s=1.0)
    async with AsyncTestClient(app=create_app(limited)) as client:
        statuses = [(await client.get(f"/v1/sales/{sale_id}")).status_code for _ in range(5)]
        assert 429 in statuses, statuses
        after = scrape((await client.get("/metrics")).text)

    exported = api_families()
    assert {"flashsale_http_requests", "flashsale_payment_alerts"} <= exported
    still = [name for name in sorted(exported) if not moved(before[name], after[name])]
    assert still == [], f"exported and never recorded: {still}"
    http = after["flashsale_http_requests"]
    for route, method, status in [
        ("/v1/sales", "POST", "201"),
        ("/v1/sales/{sale_id}/purchase", "POST", "201"),
        ("/v1/sales/{sale_id}/purchase", "POST", "409"),
        ("/v1/orders/{order_id}/payments", "POST", "201"),
        ("/v1/sales/{sale_id}", "GET", "429"),
        ("unmatched", "GET", "404"),
    ]:
        key = f"flashsale_http_requests_total{{method={method},route={route},status={status}}}"
        assert http.get(key, 0) >= 1, (key, sorted(http))
    seconds = after["flashsale_http_request_seconds"]
    key = "flashsale_http_request_seconds_count{method=POST,route=/v1/sales/{sale_id}/purchase}"
    assert seconds[key] - before["flashsale_http_request_seconds"].get(key, 0) >= 3
    purchases = after["flashsale_purchases"]
    assert purchases["flashsale_purchases_total{outcome=sold_out}"] >= 2
    assert f"flashsale_stream_lag{{sale_id={sale_id}}}" in after["flashsale_stream_lag"]


def test_http_series_are_bound_once_per_route() -> None:
    """The hot path looks bound children up; it does not build label tuples each time."""
    from flashsale.api import metrics

    scope = {"type": "http", "method": "POST", "path_template": "/bound/{x}"}
    metrics.observe_http(scope, 201, 0.001)  # type: ignore[arg-type]
    children = metrics._HTTP_CHILDREN["/bound/{x}"]["POST"]
    metrics.observe_http(scope, 201, 0.001)  # type: ignore[arg-type]
    assert metrics._HTTP_CHILDREN["/bound/{x}"]["POST"] is children
    assert children.by_status[201] is HTTP_REQUESTS.labels("/bound/{x}", "POST", "201")
    assert children.seconds is HTTP_SECONDS.labels("/bound/{x}", "POST")
    odd = {"type": "http", "method": "BREW", "path_template": None}
    metrics.observe_http(odd, 418, 0.001)  # type: ignore[arg-type]
    assert "OTHER" in metrics._HTTP_CHILDREN[metrics.UNMATCHED]  # methods stay bounded


def test_counts_wait_in_memory_and_flush_as_observe_would() -> None:
    """The hot path's count/observe, flushed, equal prometheus_client's own inc/observe."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from flashsale.api import metrics

    registry = CollectorRegistry()
    mine = Histogram("mine", "batched", buckets=metrics._BUCKETS, registry=registry)
    theirs = Histogram("theirs", "direct", buckets=metrics._BUCKETS, registry=registry)
    counter = Counter("hits", "batched", registry=registry)
    values = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.02, 2.4, 99.0]
    for value in values:
        metrics.observe(mine, value)
        theirs.observe(value)
        metrics.count(counter)
    assert registry.get_sample_value("hits_total") == 0  # not yet: in memory until a flush
    metrics.flush()
    assert registry.get_sample_value("hits_total") == len(values)
    for bound in ("0.0005", "0.001", "0.005", "0.05", "2.5", "+Inf"):
        assert registry.get_sample_value("mine_bucket", {"le": bound}) == (
            registry.get_sample_value("theirs_bucket", {"le": bound})
        ), bound
    assert registry.get_sample_value("mine_sum") == registry.get_sample_value("theirs_sum")
    metrics.flush()  # nothing twice
    assert registry.get_sample_value("hits_total") == len(values)
