"""The locust scenarios (a locustfile): ``DropBuyer``, ``Bot`` and ``Browser``.

Over 500 lines for a reason: it is the one file locust loads in its own gevent-patched
process, so every scenario's user class and the journey steps they share live here;
what the wrapper needs (records, options, verdict) lives in modules that never import it.

Run by ``flashsale loadtest drop|bots|browse`` in a process of its own (locust
monkey-patches sockets with gevent: never import this module anywhere else).
The wrapper creates the sale and passes the run's plan in ``FLASHSALE_LT`` (JSON);
tokens are minted here from ``FLASHSALE_JWT_SECRET``. Whatever a client is told
is recorded in a ``Seen`` and written to the run's directory when locust quits;
the wrapper joins it with the server's audit for the verdict.

- ``DropBuyer``: one buyer each, arriving while the sale is still scheduled; all
  fire at its opening second. Personas: plain (one try), retrier (same
  Idempotency-Key again after a simulated timeout: must get the same order),
  greedy (tries again and again). A buyer who got an order then pays by
  provider (the simulator's pay_url), cancels, or lets it expire; the first
  ``payers`` buyers (their wallets credited and payment passwords set by the
  runner before the run) fire at the opening itself and pay from their wallet.
- ``Bot``: a few users from a few addresses (X-Forwarded-For, which counts only
  where the server trusts it) hammer the purchase: refused with
  ``limit_reached``/``rate_limited``, never a second serial.
- ``Browser``: status and order-list polling with the odd purchase in between.
- ``CartBuyer`` (checkout): a cart of 1 to 3 of the run's drops with some coins, bought
  all or nothing; then the parent bill paid, or the merchant bills one by one, through
  the provider, or nothing (the orders expire and give their coins back).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from gevent import monkey
from geventhttpclient import connectionpool
from locust import FastHttpUser, between, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from flashsale.api.tokens import mint_token
from flashsale.engine.statuses import HOLDS_SERIAL
from flashsale.loadtest.seen import Bought, Seen, cpu_seconds, epoch_of
from flashsale.settings import Settings

_SETTINGS = Settings.from_env()  # the runner passes FLASHSALE_LT and FLASHSALE_JWT_SECRET
PLAN: dict[str, Any] = _SETTINGS.dev.loadtest_plan or {}
SECRET = _SETTINGS.checked_jwt_secret()
SALE = str(PLAN.get("sale_id", ""))
SALE_PATH = f"/v1/sales/{SALE}"
PURCHASE_PATH = f"{SALE_PATH}/purchase"
PASSWORD = str(PLAN.get("password", ""))  # the wallet buyers' (set by the runner)
SEEN = Seen()
_numbers = itertools.count()

EXPECTED_PURCHASE = frozenset({200, 201, 409, 429})
OPENING_JITTER = 0.3  # s: a drop's buyers fire within this much of its opening
HOLD_S = 120.0  # the longest wait for the wrapper's go (``_hold_the_users``)

_poll = monkey.get_original("select", "poll")  # gevent removes it; poll(0) never blocks
_IDLE_TROUBLE = 0x001 | 0x008 | 0x010 | 0x020  # POLLIN | POLLERR | POLLHUP | POLLNVAL


def _is_socket_alive(_pool: object, sock: Any) -> bool:
    """geventhttpclient checks an idle keep-alive socket with select(), which refuses file
    descriptors >= 1024: with thousands of users every such connection was taken for dead
    and reopened on each request, a reconnect storm (SYN retries, 30 s tails) made by the
    load generator itself. poll() has no such limit."""
    try:
        if sock is None or sock.fileno() < 0:
            return False
        poller = _poll()
        poller.register(sock.fileno(), _IDLE_TROUBLE)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


connectionpool.ConnectionPool._is_socket_alive = _is_socket_alive  # type: ignore[method-assign,assignment]


def _code(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return str(body["code"])
    return str(status)


class Client(FastHttpUser):
    """A buyer with a token of its own; every answer goes through ``call``."""

    abstract = True
    connection_timeout = 15.0
    network_timeout = 30.0

    def on_start(self) -> None:
        n = self.number = next(_numbers)
        self.rng = random.Random(f"{PLAN.get('run', '')}-{os.getpid()}-{n}")
        self.user_id, self.payer = self._identity()
        self.auth = {"Authorization": f"Bearer {mint_token(SECRET, self.user_id)}"}
        self.ip = ""
        self.done = False
        SEEN.buyers += 1

    def _identity(self) -> tuple[str, bool]:
        """(user id, whether it pays from a wallet): the first ``payers`` users across the
        processes are the runner's wallet buyers (credited, with a payment password)."""
        number = self._number_across_processes()
        if number < int(PLAN.get("payers", 0)):
            return f"{PLAN['payer_prefix']}{number}", True
        return f"{PLAN.get('run', 'lt')}-{os.getpid()}-{self.number}", False

    def _number_across_processes(self) -> int:
        """This user's number, distinct across the locust processes."""
        runner = self.environment.runner
        worker = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        return self.number * max(1, int(PLAN.get("processes", 1))) + worker

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expected: frozenset[int] = frozenset({200, 201}),
    ) -> tuple[int, Any, float, float]:
        """(status, decoded body or None, sent, received): status 0 for a transport error."""
        sent = time.time()
        with self.client.request(
            method,
            path,
            name=name,
            json=body if method != "GET" else None,
            headers=self.auth if headers is None else headers,
            catch_response=True,
        ) as response:
            received = time.time()
            status = int(response.status_code or 0)
            decoded: Any = None
            try:
                decoded = json.loads(response.content) if response.content else None
            except ValueError:
                decoded = None
            if status == 0:
                SEEN.errors[f"transport {name}"] += 1
                response.failure(f"transport: {response.error!r}")
            elif status >= 500:
                SEEN.errors[f"{status} {name}"] += 1
                response.failure(f"{status} {_code(status, decoded)}")
            elif status in expected:
                response.success()
            else:
                response.failure(f"unexpected {status} {_code(status, decoded)}")
        SEEN.requests[name] += 1
        return status, decoded, sent, received

    def sale_view(self) -> dict[str, Any] | None:
        status, sale, _, _ = self.call("GET", SALE_PATH, "sale status", headers={})
        if status != 200 or not isinstance(sale, dict):
            return None
        SEEN.sale_views += 1
        total, sold = sale.get("total", 0), sale.get("sold", 0)
        reserved, available = sale.get("reserved", 0), sale.get("available", 0)
        if min(sold, reserved, available) < 0 or sold + reserved + available != total:
            SEEN.record_problem(
                f"sale view broke sold + reserved + available == total: "
                f"{sold} + {reserved} + {available} != {total}"
            )
        return sale

    def purchase(self, key: str | None = None, name: str = "purchase") -> tuple[int, str, Any]:
        headers = dict(self.auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        if self.ip:
            headers["X-Forwarded-For"] = self.ip
        SEEN.attempts += 1
        status, body, sent, received = self.call(
            "POST", PURCHASE_PATH, name, body={}, headers=headers, expected=EXPECTED_PURCHASE
        )
        SEEN.record_sent(sent)
        if status in (200, 201) and isinstance(body, dict) and body.get("order_id"):
            SEEN.bought.append(
                Bought(
                    order_id=str(body["order_id"]),
                    serial=str(body.get("serial")),
                    buyer=self.user_id,
                    ip=self.ip,
                    sent_at=sent,
                    received_at=received,
                    expires_at=epoch_of(body.get("expires_at")),
                    replayed=status == 200,
                )
            )
            return status, "ok", body
        if 400 <= status < 500:
            code = _code(status, body)
            SEEN.refused[code] += 1
            if status not in EXPECTED_PURCHASE:
                SEEN.record_problem(f"purchase answered {status} {code}")
            return status, code, body
        return status, "error", body

    def idle(self) -> None:
        """A finished user stays (locust would replace it) but sends nothing more."""
        gevent.sleep(3600)


class OneJourney(Client):
    """A user with one journey (``_journey``); it then stays idle, and the run may end once
    every user finished."""

    abstract = True
    wait_time = constant(0)

    @task
    def journey(self) -> None:
        if self.done:
            self.idle()
            return
        try:
            self._journey()
        finally:
            self.done = True
            SEEN.finished += 1

    def _journey(self) -> None:
        raise NotImplementedError

    def _wait_for_the_opening(self, jitter: float) -> None:
        """Arrive while the sale is scheduled and sleep until its opening (+ ``jitter`` s);
        an open sale is bought from at once."""
        sale = self.sale_view()
        if sale and sale.get("status") == "scheduled":
            self._sleep_until(epoch_of(sale.get("start_at")) or time.time(), jitter)

    def _sleep_until(self, opens: float, jitter: float) -> None:
        _watch_the_opening(opens)
        gevent.sleep(max(0.0, opens - time.time()) + jitter)

    def _pay_with_provider(self, path: str, what: str) -> bool:
        """Start a provider payment at ``path`` (``what``: ``payment`` or ``bill payment``)
        and pay it at the simulator's pay_url; whether the simulator took it."""
        status, body, _, _ = self.call(
            "POST",
            path,
            f"{what} (provider)",
            body={"method": "provider", "provider": "sim"},
            expected=frozenset({201, 409}),
        )
        if status != 201 or not isinstance(body, dict) or not body.get("pay_url"):
            SEEN.payments[f"provider refused {_code(status, body)}"] += 1
            refused = "provider" if what == "payment" else what
            SEEN.sample(f"{refused} refused {_code(status, body)}", body)
            return False
        SEEN.payments["provider started"] += 1
        status, sim, _, _ = self.call(
            "POST", str(body["pay_url"]), "simulator pay_url", body={}, headers={}
        )
        SEEN.payments[f"provider pay_url {'ok' if status == 200 else _code(status, sim)}"] += 1
        return status == 200


_opening_watched = False
# (cpu, wall) at the opening while its second is being measured; None before and after
_opening_from: tuple[float, float] | None = None


def _watch_the_opening(opens: float) -> None:
    """Once per locust process: measure its CPU share over the opening second (``Seen``).
    A greenlet, so it wakes late when the process is saturated, and then measures the
    window it did see; a process told to quit within that second (a short burst whose
    buyers are all done) measures up to its quitting (``_end_the_opening``)."""
    global _opening_watched
    if _opening_watched:
        return
    _opening_watched = True

    def watch() -> None:
        global _opening_from
        gevent.sleep(max(0.0, opens - time.time()))
        _opening_from = (cpu_seconds(), time.monotonic())
        gevent.sleep(1.0)
        _end_the_opening()

    gevent.spawn(watch)


def _end_the_opening() -> None:
    global _opening_from
    if _opening_from is not None:
        SEEN.measure_opening(*_opening_from)
        _opening_from = None


class DropBuyer(OneJourney):
    """One buyer of a drop: arrive, wait for the opening, buy, then pay, cancel or wait."""

    def _journey(self) -> None:
        shares: dict[str, float] = PLAN.get("shares", {})
        # the wallet buyers fire at the opening itself (they must get orders to pay)
        self._wait_for_the_opening(0.0 if self.payer else self.rng.uniform(0.0, OPENING_JITTER))
        roll = self.rng.random()
        if roll < shares.get("retry", 0.0):
            order = self._retrier()
        elif roll < shares.get("retry", 0.0) + shares.get("greedy", 0.0):
            order = self._greedy()
        else:
            order = self._buy_once()
        if order is not None:
            self._after(order)

    def _buy_once(self, key: str | None = None, name: str = "purchase") -> dict[str, Any] | None:
        for _ in range(int(PLAN.get("not_open_retries", 40))):
            status, code, body = self.purchase(key, name)
            if code in ("sale_not_open", "rate_limited") or status == 0 or status >= 500:
                gevent.sleep(self.rng.uniform(0.1, 0.4))
                continue
            return body if code == "ok" else None
        return None

    def _retrier(self) -> dict[str, Any] | None:
        key = uuid.uuid4().hex
        first = self._buy_once(key, "purchase (idempotent)")
        gevent.sleep(self.rng.uniform(0.05, 0.3))  # the answer "timed out": ask again
        status, code, again = self.purchase(key, "purchase (same key again)")
        if first is None:
            return again if code == "ok" else None
        if code != "ok":
            SEEN.replays[f"refused:{code}"] += 1
            SEEN.record_problem(
                f"{self.user_id}: same Idempotency-Key again got {status} {code}, "
                f"not its order {first.get('order_id')}"
            )
        elif again.get("order_id") != first.get("order_id"):
            SEEN.replays["different"] += 1
            SEEN.record_problem(
                f"{self.user_id}: same Idempotency-Key again got order {again.get('order_id')}, "
                f"not {first.get('order_id')}"
            )
        elif status != 200:
            SEEN.replays["not 200"] += 1
            SEEN.record_problem(f"{self.user_id}: replay answered {status}, not 200")
        else:
            SEEN.replays["same"] += 1
        return first

    def _greedy(self) -> dict[str, Any] | None:
        got: dict[str, Any] | None = None
        for _ in range(int(PLAN.get("greedy_tries", 10))):
            _, code, body = self.purchase(None, "purchase (greedy)")
            if code == "ok" and got is None:
                got = body
            if code in ("sold_out", "sale_closed"):
                break
            gevent.sleep(self.rng.uniform(0.05, 0.25))
        return got

    def _after(self, order: dict[str, Any]) -> None:
        if self.payer:
            self._pay_balance(order)
            return
        shares: dict[str, float] = PLAN.get("shares", {})
        others = 1.0 - shares.get("pay_balance", 0.0)  # the wallet buyers are set apart
        roll = self.rng.random() * others
        provider, cancel = itertools.accumulate(
            shares.get(k, 0.0) for k in ("pay_provider", "cancel")
        )
        if roll < provider:
            self._pay_provider(order)
        elif roll < cancel:
            self._cancel(order)
        # else: let it expire (its serial returns to the pool)

    def _mine(self, order_id: str) -> Bought | None:
        for bought in reversed(SEEN.bought):
            if bought.order_id == order_id:
                return bought
        return None

    def _pay_provider(self, order: dict[str, Any]) -> None:
        self._pay_with_provider(f"/v1/orders/{order['order_id']}/payments", "payment")

    def _pay_balance(self, order: dict[str, Any]) -> None:
        """Pay from the wallet the runner credited, with the password it set."""
        order_id = order["order_id"]
        status, body, _, _ = self.call(
            "POST",
            f"/v1/orders/{order_id}/payments",
            "payment (balance)",
            body={"method": "balance", "payment_password": PASSWORD},
            expected=frozenset({201, 409}),
        )
        if status == 201 and isinstance(body, dict) and body.get("status") == "succeeded":
            SEEN.payments["balance succeeded"] += 1
            mine = self._mine(order_id)
            if mine is not None:
                mine.paid = "balance"
        else:
            SEEN.payments[f"balance refused {_code(status, body)}"] += 1
            SEEN.sample(f"balance refused {_code(status, body)}", body)

    def _cancel(self, order: dict[str, Any]) -> None:
        order_id = order["order_id"]
        status, body, sent, _ = self.call(
            "POST",
            f"/v1/orders/{order_id}/cancel",
            "cancel",
            body={},
            expected=frozenset({200, 409}),
        )
        if status == 200 and isinstance(body, dict) and body.get("status") == "cancelled":
            SEEN.cancels["cancelled"] += 1
            mine = self._mine(order_id)
            if mine is not None:
                mine.cancelled_at = sent
        else:
            SEEN.cancels[_code(status, body)] += 1
            SEEN.sample(f"cancel refused {_code(status, body)}", body)


class BurstBuyer(DropBuyer):
    """One buyer of the demo's burst: arrives, waits for the opening, fires its share of the
    demo's ``attempts`` at once (a buyer's double clicks: the per-user limit under a race),
    and nothing follows (the demo pays the orders itself)."""

    def _identity(self) -> tuple[str, bool]:
        number = self._number_across_processes()
        attempts, buyers = int(PLAN.get("attempts", 1)), max(1, int(PLAN.get("users", 1)))
        self.tries = attempts // buyers + (number < attempts % buyers)
        return f"{PLAN.get('buyer_prefix', 'buyer-')}{number:05d}", False

    def _journey(self) -> None:
        # the opening comes with the wrapper's go (``runner.Locust.go``), not from a sale GET
        # per buyer: on a Redis Cluster a few hundred of those at once exhausted the API
        # worker's connections to a node, and its pool never recovered (every later audit
        # answered 500)
        hold: dict[str, str] = PLAN.get("hold") or {}
        opens = epoch_of(Path(hold["go"]).read_text().strip()) if hold else None
        if opens is None:
            self._wait_for_the_opening(self.rng.uniform(0.0, OPENING_JITTER))
        else:
            self._sleep_until(opens, self.rng.uniform(0.0, OPENING_JITTER))
        # FastHttpUser's client keeps up to ``concurrency`` (10) connections for these
        gevent.joinall([gevent.spawn(self._buy_once) for _ in range(self.tries)])


class Bot(Client):
    """Hammers the purchase from one of a few addresses, with and without keys."""

    wait_time = between(0.005, 0.02)

    def on_start(self) -> None:
        super().on_start()
        ips: list[str] = PLAN.get("bot_ips") or ["203.0.113.7"]
        self.ip = ips[(int(self.user_id.rsplit("-", 1)[1])) % len(ips)]
        self.key = uuid.uuid4().hex
        self.sent = 0

    @task
    def hammer(self) -> None:
        if self.sent >= int(PLAN.get("bot_max_attempts", 2000)):
            self.idle()
            return
        self.sent += 1
        roll = self.rng.random()
        if roll < 0.2:
            self.purchase(self.key, "purchase (bot, same key)")
        elif roll < 0.4:
            self.purchase(uuid.uuid4().hex, "purchase (bot, new key)")
        else:
            self.purchase(None, "purchase (bot)")
        if self.sent % 50 == 0:
            self.sale_view()


class Browser(Client):
    """Polls the sale and its own orders as real clients do; buys now and then."""

    wait_time = between(0.2, 1.0)

    @task(8)
    def status(self) -> None:
        self.sale_view()

    @task(2)
    def my_orders(self) -> None:
        status, orders, _, _ = self.call(
            "GET", f"/v1/me/orders?sale_id={SALE}", "my orders", headers=self.auth
        )
        if status != 200 or not isinstance(orders, list):
            return
        foreign = [o for o in orders if o.get("user_id") != self.user_id]
        if foreign:
            SEEN.record_problem(f"{self.user_id} was shown orders of other buyers: {foreign[:2]}")
        live = [o for o in orders if o.get("status") in HOLDS_SERIAL]
        limit = int(PLAN.get("per_user_limit", 1))
        if len(live) > limit:
            SEEN.record_problem(f"{self.user_id} lists {len(live)} live orders (limit {limit})")

    @task(1)
    def buy(self) -> None:
        self.purchase(None, "purchase (browser)")


CARTS: list[dict[str, Any]] = []  # what each CartBuyer was told (checkout_run.py judges it)
EXPECTED_CHECKOUT = frozenset({201, 409, 429})


class CartBuyer(OneJourney):
    """One buyer of a cart across the run's drops (``PLAN["sale_ids"]``)."""

    def _journey(self) -> None:
        coins = int(PLAN.get("coins_cents", 0))
        admin = {"Authorization": f"Bearer {mint_token(SECRET, 'loadtest-ops', admin=True)}"}
        status, _, _, _ = self.call(
            "POST",
            f"/v1/admin/wallets/{self.user_id}/credit",
            "setup: coins credit",
            body={"amount_cents": coins, "reason": f"loadtest {PLAN.get('run')}", "kind": "coins"},
            headers=admin | {"Idempotency-Key": f"lt-coins-{self.user_id}"},
        )
        if status != 200:
            SEEN.record_problem(f"{self.user_id}: coins credit answered {status}")
            return
        sale_ids: list[str] = list(PLAN.get("sale_ids", []))
        chosen = self.rng.sample(sale_ids, self.rng.randint(1, len(sale_ids)))
        spend = self.rng.choice([0, coins // 4, coins // 2])
        body = {"items": [{"sale_id": s} for s in chosen], "coins_cents": spend}
        cart: dict[str, Any] = {"buyer": self.user_id, "asked": chosen, "coins_cents": spend}
        CARTS.append(cart)
        SEEN.attempts += 1
        status, answer, _, received = self.call(
            "POST", "/v1/checkouts", "checkout", body=body, expected=EXPECTED_CHECKOUT
        )
        if status != 201 or not isinstance(answer, dict):
            code = _code(status, answer)
            cart["refused"] = code
            SEEN.refused[code] += 1
            return
        cart["checkout_id"] = answer.get("checkout_id")
        cart["orders"] = [
            {k: o.get(k) for k in ("order_id", "sale_id", "serial", "coins_cents")}
            for o in answer.get("orders", [])
        ]
        for o in answer.get("orders", []):
            SEEN.bought.append(
                Bought(
                    order_id=str(o.get("order_id")),
                    serial=f"{o.get('sale_id')}#{o.get('serial')}",  # serials are per sale
                    buyer=self.user_id,
                    received_at=received,
                    expires_at=epoch_of(o.get("expires_at")),
                )
            )
        roll = self.rng.random()
        if roll < 0.4:
            cart["paid"] = "parent" if self._pay_bill(answer["bill"]) else ""
        elif roll < 0.7:
            paid = [self._pay_bill(sub["bill"]) for sub in answer.get("sub_orders", [])]
            cart["paid"] = "merchants" if paid and all(paid) else ""
        # else: the orders expire, their coins come back

    def _pay_bill(self, bill: dict[str, Any]) -> bool:
        return self._pay_with_provider(f"/v1/bills/{bill.get('bill_id')}/payments", "bill payment")


def _out_dir() -> Path:
    return Path(str(PLAN.get("out_dir", ".")))


FINISHED = "flashsale_finished"  # a worker process's message: its users that finished
ENDS_EARLY = ("drop", "burst", "checkout")  # scenarios whose users have one journey each
_finished_by_worker: dict[int, int] = {}  # on the master: the last count each worker sent


def _count_finished(environment: Environment, msg: Any, **_: Any) -> None:
    _finished_by_worker[int(msg.data["worker"])] = int(msg.data["finished"])


def _listen_to_workers(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(FINISHED, _count_finished)


def _hold_the_users(environment: Environment, **_: Any) -> None:
    """With ``hold`` in the plan, spawn no user before the wrapper says go: the master (or
    the only process) writes the ``ready`` file once locust has started, then waits for the
    ``go`` file, which the wrapper writes once it created the sale; the sale's opening then
    needs no guess of locust's start-up (5 s of imports on a loaded machine), only of the
    spawn. At ``init``, before locust starts its run and its ``--run-time`` clock (held at
    ``test_start``, the hold ate a short run's time: a 6 s bots run ended 1.5 s after go)."""
    hold: dict[str, str] = PLAN.get("hold") or {}
    if not hold or isinstance(environment.runner, WorkerRunner):
        return
    Path(hold["ready"]).touch()
    deadline = time.monotonic() + HOLD_S
    while not Path(hold["go"]).exists() and time.monotonic() < deadline:
        gevent.sleep(0.05)


def _watch_for_the_end(environment: Environment, **_: Any) -> None:
    """End a run of one-journey users as soon as every user finished (``--run-time`` bounds
    it); with ``--processes`` each worker tells the master its count twice a second."""
    runner = environment.runner
    if runner is None or PLAN.get("scenario") not in ENDS_EARLY:
        return
    if isinstance(runner, WorkerRunner):
        worker = runner

        def tell() -> None:
            told = -1
            while True:
                gevent.sleep(0.5)
                if SEEN.finished != told:
                    told = SEEN.finished
                    data = {"worker": worker.worker_index, "finished": told}
                    worker.send_message(FINISHED, data)

        gevent.spawn(tell)
        return
    target = int(PLAN.get("users", 0))

    def watch() -> None:
        while True:
            gevent.sleep(0.5)
            if target and SEEN.finished + sum(_finished_by_worker.values()) >= target:
                gevent.sleep(0.2)
                runner.quit()
                return

    gevent.spawn(watch)


def _write_what_clients_saw(environment: Environment, **_: Any) -> None:
    _end_the_opening()  # its second may not be over: a short burst is done sooner
    SEEN.write(_out_dir())
    if CARTS:
        (_out_dir() / f"carts-{os.getpid()}.json").write_text(json.dumps(CARTS))
    if isinstance(environment.runner, WorkerRunner):
        return
    # locust's CSV is rewritten once a second: keep the final figures exactly
    stats = environment.stats
    rows = {
        entry.name: {
            "Name": entry.name,
            "Request Count": entry.num_requests,
            "Failure Count": entry.num_failures,
            "Requests/s": entry.total_rps,
            "50%": entry.get_response_time_percentile(0.50),
            "95%": entry.get_response_time_percentile(0.95),
            "99%": entry.get_response_time_percentile(0.99),
        }
        for entry in [*stats.entries.values(), stats.total]
    }
    (_out_dir() / "stats.json").write_text(json.dumps(rows))


events.init.add_listener(_listen_to_workers)  # type: ignore[no-untyped-call]
events.init.add_listener(_hold_the_users)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_watch_for_the_end)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write_what_clients_saw)  # type: ignore[no-untyped-call]
