"""The ops console in a real browser: Debian's chromium, driven headless by Selenium
through chromedriver, against a real ``flashsale serve`` with Redis and PostgreSQL.

One browser session for the module. Each page is saved as a PNG in the test's
temporary directory, or, with ``FLASHSALE_SCREENSHOTS=docs/screenshots``, where the
README shows them (a run that refreshes the committed pictures). A missing browser
fails the test: ``make setup`` and ``.ci/run`` install ``chromium`` and
``chromium-driver`` (.ci/tools).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from flashsale.api.tokens import mint_token
from flashsale.devservers import ChildProcess, free_port
from flashsale.engine.engine import Engine
from flashsale.orders.aftersales import AfterSales, Upload
from flashsale.orders.bill_settlement import BillSettlement
from flashsale.payments.service import PaymentService
from tests.engine.tune_child import tune_in_a_child

from .conftest import SECRET
from .test_server import Server, running

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("FLASHSALE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-"))
WAIT_S = 15
ADMIN = mint_token(SECRET, "ops-console", admin=True)
SALE = "genesis-console"
PASSWORD = {"password": "246810"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 90
DOWNLOADS = Path(tempfile.mkdtemp(prefix="console-downloads-"))


def bearer(user: str, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user, admin=admin)}"}


@pytest.fixture(scope="module")
def server(
    redis_url: str, migrated_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The API, and the write-behind (the list of sales is PostgreSQL's), ready once its
    own /metrics port answers."""
    for server in running("granian", redis_url, tmp_path_factory, migrated_database_url):
        port = free_port()
        env = {
            **os.environ,
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_DATABASE_URL": migrated_database_url,
            "FLASHSALE_NAMESPACE": server.namespace,
            "FLASHSALE_JWT_SECRET": SECRET,
            "FLASHSALE_PERSIST_METRICS_PORT": str(port),
        }
        persist = ChildProcess(
            [sys.executable, "-m", "flashsale.cli.main", "persist"],
            env=env,
            log=tmp_path_factory.mktemp("persist") / "persist.log",
            ready_url=f"http://127.0.0.1:{port}/metrics",
            start_timeout_s=30,
        )
        with persist:
            yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{missing} missing: apt-get install chromium chromium-driver"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    # evidence files the console saves land here, for the test to read back
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(DOWNLOADS), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The console as a user sees it: ids of its elements, waits on what they show."""

    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver, self.url = driver, url

    def __call__(self, element_id: str) -> Any:
        return self.driver.find_element(By.ID, element_id)

    def until(self, condition: Callable[[], Any], what: str) -> Any:
        def check(_: WebDriver) -> Any:
            try:
                return condition()
            except StaleElementReferenceException:
                return False

        return WebDriverWait(self.driver, WAIT_S, poll_frequency=0.1).until(check, what)

    def text(self, element_id: str) -> str:
        text: str = self(element_id).text
        return text

    def shows(self, element_id: str, expected: str) -> None:
        self.until(lambda: self.text(element_id) == expected, f"{element_id} == {expected!r}")

    def dialog_open(self) -> bool:
        return bool(self.driver.execute_script("return document.getElementById('confirm').open"))

    def confirm(self, *, note: str | None = None) -> str:
        self.until(self.dialog_open, "the confirmation dialog")
        body = self.text("confirm-body")
        if note is not None:
            self("confirm-note").send_keys(note)
        self("confirm-ok").click()
        self.until(lambda: not self.dialog_open(), "the dialog closes")
        return body

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("document.getElementById('toast').hidden = true")
        assert self.driver.save_screenshot(str(SCREENSHOTS / f"console-{name}.png"))


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def drop(api: httpx.Client) -> dict[str, Any]:
    """A live sale with purchases, refusals and a paid order cancelled (a refund to review)."""
    body = {"sale_id": SALE, "name": "Genesis drop", "serials": {"range": [1, 100]}}
    body |= {"price_cents": 9900, "per_user_limit": 1}
    r = api.post("/v1/sales", json=body, headers=bearer("ops", admin=True))
    assert r.status_code == 201, r.text
    pending = [
        api.post(f"/v1/sales/{SALE}/purchase", json={}, headers=bearer(f"b{i}")) for i in range(12)
    ]
    assert all(r.status_code == 201 for r in pending)
    for i in range(3):  # limit_reached
        assert api.post(f"/v1/sales/{SALE}/purchase", json={}, headers=bearer(f"b{i}")).status_code
    buyer = bearer("refund-me")
    order = _paid_order(api, SALE, "refund-me")
    r = api.post(f"/v1/orders/{order['order_id']}/cancel", headers=buyer)
    assert r.json()["status"] == "refund_pending", r.text
    return {"refund": order, "pending": pending[0].json()}


def _paid_order(api: httpx.Client, sale_id: str, user: str) -> dict[str, Any]:
    """An order of ``user`` in ``sale_id``, paid from a wallet credited for it."""
    buyer = bearer(user)
    order: dict[str, Any] = api.post(f"/v1/sales/{sale_id}/purchase", json={}, headers=buyer).json()
    assert api.put("/v1/me/payment-password", json=PASSWORD, headers=buyer).status_code == 204
    credit = {"amount_cents": 9900, "reason": "console test"}
    idem = {"Idempotency-Key": f"credit-{order['order_id']}"}
    headers = bearer("ops", admin=True) | idem
    assert api.post(f"/v1/admin/wallets/{user}/credit", json=credit, headers=headers).is_success
    pay = {"method": "balance", "payment_password": PASSWORD["password"]}
    r = api.post(f"/v1/orders/{order['order_id']}/payments", json=pay, headers=buyer)
    assert r.status_code == 201, r.text
    return order


@pytest.fixture(scope="module")
def tickets(
    api: httpx.Client, server: Server, redis_url: str, migrated_database_url: str
) -> list[str]:
    """Two after-sales tickets on delivered orders of a sale of their own: one with a PNG
    and a PDF, one without evidence, on the server's Redis and PostgreSQL. The orders are
    paid over HTTP and moved to delivered through the engine's own transitions (what the
    deliverer calls; tests/chain mints them on a real chain)."""
    sale = f"{SALE}-tickets"
    body = {"sale_id": sale, "name": "Tickets drop", "serials": {"range": [1, 10]}}
    r = api.post("/v1/sales", json=body | {"price_cents": 4900}, headers=bearer("ops", admin=True))
    assert r.status_code == 201, r.text
    orders = [_paid_order(api, sale, user) for user in ("unhappy-a", "unhappy-b")]

    async def open_tickets() -> list[str]:
        engine = Engine.from_url(redis_url, namespace=server.namespace)
        pool = await asyncpg.create_pool(migrated_database_url, min_size=1, max_size=2)
        assert pool is not None
        try:
            for order in orders:
                await engine.start_delivery(order["order_id"])
                await engine.confirm_delivery(order["order_id"])
            desk = AfterSales(PaymentService(pool, engine, {}, bills=BillSettlement))
            a = await desk.open(
                orders[0]["order_id"],
                "unhappy-a",
                "the token shows another picture",
                [Upload(PNG), Upload(PDF)],
            )
            b = await desk.open(orders[1]["order_id"], "unhappy-b", "changed my mind", [])
            return [a.ticket_id, b.ticket_id]
        finally:
            await pool.close()
            await engine.aclose()

    return asyncio.run(open_tickets())


async def _execute(url: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def test_the_console_in_a_browser(
    browser: WebDriver,
    server: Server,
    api: httpx.Client,
    drop: dict[str, Any],
    tickets: list[str],
    migrated_database_url: str,
) -> None:
    page = Page(browser, server.url)
    browser.get(f"{server.url}/console")
    csp = api.get("/console").headers["content-security-policy"]
    assert "script-src 'self'" in csp

    # sign-in: a buyer's token is refused, an admin's accepted
    page.until(lambda: page("signin").is_displayed(), "the sign-in form")
    page("token").send_keys(mint_token(SECRET, "just-a-buyer"))
    page("signin-button").click()
    page.shows("signin-error", "This token is not an admin's.")
    page.shot("signin")
    page("token").clear()
    page("token").send_keys(ADMIN)
    page("signin-button").click()

    # the list of sales, with live counters
    link = page.until(lambda: browser.find_element(By.LINK_TEXT, SALE), "the sale in the list")
    row = link.find_element(By.XPATH, "./ancestor::tr").text
    assert "Genesis drop" in row and "open" in row
    page.shot("sales")

    # the live view: counters move while it is shown
    link.click()
    page.shows("m-sold", "1")
    page.shows("m-reserved", "12")
    page.shows("m-available", "87")
    page.until(lambda: "limit_reached" in page.text("refusals-table"), "refusals by code")
    assert page.text("m-deliveries") == "0"
    for i in range(20, 25):
        assert api.post(f"/v1/sales/{SALE}/purchase", json={}, headers=bearer(f"b{i}")).is_success
    page.shows("m-available", "82")
    page.until(lambda: page.text("m-purchases") == "18", "18 purchases counted")
    page.shot("sale")

    # pause, with a confirmation that says what will be sent
    page("do-pause").click()
    assert '"status": "paused"' in page.confirm()
    page.shows("sale-status", "paused")
    assert api.get(f"/v1/sales/{SALE}").json()["status"] == "paused"
    # closing is cancelled at the dialog: nothing is sent
    page("do-close").click()
    page.until(page.dialog_open, "the dialog")
    page("confirm-cancel").click()
    assert api.get(f"/v1/sales/{SALE}").json()["status"] == "paused"
    # tune limits, payment timeout, end time and add stock in one change
    page("tune-user-limit").send_keys("3")
    page("tune-timeout").send_keys("600")
    page("add-from").send_keys("101")
    page("add-to").send_keys("110")
    page("tune-submit").click()
    sent = page.confirm()
    assert '"per_user_limit": 3' in sent and '"range": [\n      101,\n      110\n    ]' in sent
    page.shows("m-total", "110")
    sale = api.get(f"/v1/sales/{SALE}").json()
    assert (sale["per_user_limit"], sale["payment_timeout_s"], sale["total"]) == (3, 600, 110)
    # a value out of bounds is stopped by the form; a refused change shows the server's code
    page("tune-ip-limit").send_keys("0")
    page("tune-submit").click()
    assert not page.dialog_open()
    underflow = "return document.getElementById('tune-ip-limit').validity.rangeUnderflow"
    assert browser.execute_script(underflow)
    page("tune-ip-limit").clear()
    page("add-from").send_keys("1")
    page("add-to").send_keys("5")
    page("tune-submit").click()
    page.confirm()
    page.until(lambda: "serials_conflict" in page.text("toast"), "the refusal's code")
    page("do-resume").click()
    page.confirm()
    page.shows("sale-status", "open")

    # the audit, with its violations when there are any
    page("sale-audit-link").click()
    report = api.get(f"/v1/sales/{SALE}/audit?quick=true", headers=bearer("ops", admin=True))
    expected = report.json()
    page.until(lambda: page.text("audit-verdict") not in ("", "auditing…"), "a verdict")
    verdict = page.text("audit-verdict")
    assert verdict == (
        "OK: every invariant holds"
        if expected["ok"]
        else f"{len(expected['violations'])} violation(s)"
    )
    assert page("violations-table").is_displayed() == (not expected["ok"])
    # an order PostgreSQL lost: the deep audit finds it, the page lists the violation
    lost = drop["pending"]["order_id"]
    asyncio.run(_execute(migrated_database_url, "DELETE FROM orders WHERE order_id = $1", lost))
    page("audit-deep").click()
    page.until(lambda: "violation(s)" in page.text("audit-verdict"), "violations")
    deep = api.get(f"/v1/sales/{SALE}/audit", headers=bearer("ops", admin=True)).json()
    assert not deep["ok"]
    shown = page.text("violations-table")
    assert page.text("audit-verdict") == f"{len(deep['violations'])} violation(s)"
    for violation in deep["violations"]:
        assert violation["code"] in shown
    assert lost in shown  # among the examples
    page.shot("audit")

    # the refund review queue: approve with a note
    page("nav-refunds").click()
    # this drop's refund: the suite's other tests may have left pending refunds before it
    pending = api.get("/v1/admin/refunds", headers=bearer("ops", admin=True)).json()
    [refund_id] = [r["refund_id"] for r in pending if r["order_id"] == drop["refund"]["order_id"]]
    approve = page.until(
        lambda: browser.find_element(
            By.CSS_SELECTOR, f'#refunds-table button.primary[data-refund="{refund_id}"]'
        ),
        "the drop's pending refund",
    )
    assert drop["refund"]["order_id"] in page.text("refunds-table")
    page.shot("refunds")
    approve.click()
    assert drop["refund"]["order_id"] in page.confirm(note="duplicate, checked")
    # a wallet refund is paid back at once
    page.until(lambda: f"refund {refund_id}: refunded, paid back" in page.text("toast"), "done")
    listed = api.get("/v1/admin/refunds", headers=bearer("ops", admin=True)).json()
    decided = next(r for r in listed if r["refund_id"] == refund_id)
    assert decided["status"] == "refunded" and decided["executed_at"], decided
    page.until(lambda: refund_id not in page.text("refunds-table"), "gone from the pending queue")

    # the after-sales queue: evidence saved with the token, approve and reject with notes
    admin = bearer("ops", admin=True)
    evidenced, plain = tickets
    page("nav-tickets").click()
    page.until(lambda: plain in page.text("tickets-table"), "the open tickets")
    table = page.text("tickets-table")
    assert evidenced in table and "the token shows another picture" in table
    assert "png · 72 B" in table and "pdf · 99 B" in table
    page.shot("after-sales")
    ticket = api.get(f"/v1/after-sales/{evidenced}", headers=admin).json()
    png = ticket["evidence"][0]["evidence_id"]
    browser.find_element(By.CSS_SELECTOR, f'a[data-evidence="{png}"]').click()
    saved = DOWNLOADS / f"{png}.png"
    page.until(saved.exists, "the evidence saved")
    page.until(lambda: saved.read_bytes() == PNG, "the evidence's bytes")
    buttons = f'#tickets-table button[data-ticket="{evidenced}"]'
    browser.find_element(By.CSS_SELECTOR, buttons + ".primary").click()
    assert ticket["order_id"] in page.confirm(note="picture checked: wrong token")
    page.until(lambda: f"ticket {evidenced}: approved, refund" in page.text("toast"), "approved")
    approved = api.get(f"/v1/after-sales/{evidenced}", headers=admin).json()
    assert approved["status"] == "approved" and approved["note"] == "picture checked: wrong token"
    refunds = api.get("/v1/admin/refunds", headers=admin).json()
    refund = next(r for r in refunds if r["refund_id"] == approved["refund_id"])
    assert refund["order_id"] == ticket["order_id"] and refund["status"] == "refunded", refund
    page.until(lambda: evidenced not in page.text("tickets-table"), "gone from the open queue")
    # a rejection cancelled at the dialog sends nothing; confirmed, it keeps its note
    reject = f'#tickets-table button[data-ticket="{plain}"].danger'
    browser.find_element(By.CSS_SELECTOR, reject).click()
    page.until(page.dialog_open, "the dialog")
    page("confirm-cancel").click()
    assert api.get(f"/v1/after-sales/{plain}", headers=admin).json()["status"] == "open"
    browser.find_element(By.CSS_SELECTOR, reject).click()
    page.confirm(note="outside the rules")
    page.until(lambda: f"ticket {plain}: rejected" in page.text("toast"), "rejected")
    rejected = api.get(f"/v1/after-sales/{plain}", headers=admin).json()
    assert (rejected["status"], rejected["note"], rejected["refund_id"]) == (
        "rejected",
        "outside the rules",
        None,
    )
    Select(page("ticket-status")).select_by_value("")
    page.until(lambda: "outside the rules" in page.text("tickets-table"), "decided tickets")

    # a delivery the deliverer gave up: listed, queued again after the confirmation
    stuck = f"{SALE}-gaveup.{secrets.token_hex(10)}"
    asyncio.run(
        _execute(
            migrated_database_url,
            "INSERT INTO deliveries (order_id, sale_id, user_id, token_id, status, address, "
            "attempts, reason) VALUES ($1, $2, 'stuck-buyer', 7, 'failed', $3, 3, $4)",
            stuck,
            SALE,
            "0x" + "ab" * 20,
            "reverted 3 times",
        )
    )
    page("nav-deliveries").click()
    page.until(lambda: stuck in page.text("deliveries-table"), "the given-up delivery")
    assert "reverted 3 times" in page.text("deliveries-table")
    page.shot("deliveries")
    redeliver = f'#deliveries-table button[data-delivery="{stuck}"]'
    browser.find_element(By.CSS_SELECTOR, redeliver).click()
    assert f"POST /v1/admin/orders/{stuck}/redeliver" in page.confirm()
    page.until(lambda: f"order {stuck}: awaiting_address" in page.text("toast"), "requeued")
    page.until(lambda: stuck not in page.text("deliveries-table"), "gone from the list")
    given_up = api.get("/v1/admin/deliveries/given-up", headers=admin).json()
    assert stuck not in [item["order_id"] for item in given_up]

    # signing out forgets the token
    page("sign-out").click()
    page.until(lambda: page("signin").is_displayed(), "the sign-in form again")
    assert browser.execute_script("return sessionStorage.length") == 0


def test_the_console_shows_a_tune_pending_on_some_buckets(
    browser: WebDriver, server: Server, api: httpx.Client, redis_url: str
) -> None:
    """A bucketed drop whose pause stopped after bucket 0 (the tuning process killed
    there): the sale's page and the list of sales badge it until the buckets are level."""
    sale = f"{SALE}-buckets"
    admin = bearer("ops", admin=True)
    body = {"sale_id": sale, "name": "Bucketed drop", "serials": {"range": [1, 30]}}
    r = api.post("/v1/sales", json=body | {"buckets": 3}, headers=admin)
    assert r.status_code == 201, r.text
    code, output = asyncio.run(
        tune_in_a_child(
            redis_url, server.namespace, sale, {"status": "paused"}, "tune.after_bucket_0"
        )
    )
    assert code == -9, (code, output)
    assert api.get(f"/v1/sales/{sale}").json()["tune_pending"] is True
    page = Page(browser, server.url)
    browser.get(f"{server.url}/console")
    browser.execute_script("sessionStorage.setItem('flashsale.console.token', arguments[0])", ADMIN)
    browser.get(f"{server.url}/console#/sale/{sale}")
    page.shows("sale-status", "paused")
    page.until(lambda: page("sale-tune-pending").is_displayed(), "the tune-pending badge")
    assert page.text("sale-tune-pending") == "tune pending on some buckets"
    page.shot("tune-pending")
    page("nav-sales").click()
    pending_in_list = f'//tr[td/a[text()="{sale}"]]//span[contains(@class, "tune-pending")]'
    page.until(
        lambda: browser.find_elements(By.XPATH, pending_in_list), "the badge in the list of sales"
    )
    # the same tune again brings the buckets level: the badges go
    r = api.patch(f"/v1/sales/{sale}", json={"status": "paused"}, headers=admin)
    assert r.status_code == 200 and r.json()["tune_pending"] is False, r.text
    page.until(lambda: not browser.find_elements(By.XPATH, pending_in_list), "no badge in the list")
    browser.get(f"{server.url}/console#/sale/{sale}")
    page.shows("sale-status", "paused")
    page.until(lambda: page.text("sale-updated"), "a live sample shown")
    assert not page("sale-tune-pending").is_displayed()
