"""Before and after a load test's timed run: the wallet buyers are prepared, the sale closed.

Kept out of the timed run on purpose: a payment password is an argon2 hash
(memory-hard, ~0.15 s of CPU each), and setting a hundred of them while a drop
is running measured the hashing, not the drop, and ran past the sale's payment
window (issue #16: every balance payment of a run refused).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from flashsale.api.tokens import mint_token
from flashsale.loadtest.options import Options

PRICE_CENTS = 9900  # of every load-test sale, and the test money a wallet buyer gets
PASSWORD = "loadtest-pay-123456"  # the payment password of the buyers who pay from a wallet
SETUP_CONCURRENCY = 4  # payment passwords hashed at once on the server during the setup


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def prepare_payers(
    opts: Options, secret: str, admin: dict[str, str], echo: Callable[[str], None]
) -> list[str]:
    """Credit the wallet and set the payment password of each buyer who will pay from a
    wallet, before the timed run; returns what failed (empty: all ready)."""
    ids = [f"{opts.payer_prefix}{i}" for i in range(opts.payers)]
    if not ids:
        return []
    echo(
        f"setup: {len(ids)} buyers who will pay from their wallets get test money and a "
        "payment password (outside the timed run) ..."
    )
    started = time.monotonic()

    def prepare(user_id: str) -> str | None:
        with httpx.Client(base_url=opts.host, timeout=120) as client:
            credited = client.post(
                f"/v1/admin/wallets/{user_id}/credit",
                json={"amount_cents": PRICE_CENTS, "reason": f"loadtest {opts.run}: test money"},
                headers=admin | {"Idempotency-Key": f"loadtest-{opts.run}-{user_id}"},
            )
            if credited.status_code != 200:
                return f"credit {credited.status_code} {credited.text[:120]}"
            token = _auth(mint_token(secret, user_id))
            password = client.put(
                "/v1/me/payment-password", json={"password": PASSWORD}, headers=token
            )
            if password.status_code != 204:
                return f"payment password {password.status_code} {password.text[:120]}"
        return None

    with ThreadPoolExecutor(SETUP_CONCURRENCY) as pool:
        try:
            failed = [f for f in pool.map(prepare, ids) if f is not None]
        except httpx.HTTPError as exc:
            failed = [f"transport: {exc!r}"]
    echo(
        f"setup: {len(ids) - len(failed)} of {len(ids)} ready in {time.monotonic() - started:.1f} s"
    )
    if failed:
        return [f"setup: {len(failed)} of {len(ids)} wallet buyers not ready, e.g. {failed[0]}"]
    return []


def clean_up(client: httpx.Client, opts: Options, sale_id: str, admin: dict[str, str]) -> list[str]:
    """Close the run's sale (unless --keep); say what stays and how to find it."""
    if opts.keep:
        return [f"kept: sale {sale_id} as it is (--keep)"]
    lines = []
    try:
        closed = client.patch(f"/v1/sales/{sale_id}", json={"status": "closed"}, headers=admin)
        if closed.status_code == 200:
            lines.append(f"cleanup: sale {sale_id} closed")
        else:
            why = f"{closed.status_code} {closed.text[:200]}"
            lines.append(f"cleanup: could not close sale {sale_id}: {why}")
    except httpx.HTTPError as exc:
        lines.append(f"cleanup: could not close sale {sale_id}: {exc!r}")
    if opts.payers:
        lines.append(
            f"cleanup: the test money of {opts.payers} wallets ({opts.payer_prefix}*) is marked "
            f"'loadtest {opts.run}' in their ledgers"
        )
    return lines
