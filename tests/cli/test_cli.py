"""The `flashsale` command, through typer's runner against the real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import msgspec
import pytest
from rich.console import Console
from typer.testing import CliRunner

from flashsale.api.state import SaleStats
from flashsale.cli import sale as sale_cli
from flashsale.cli.main import app
from flashsale.engine.engine import Engine
from flashsale.engine.models import Sale

from ..conftest import delete_namespace

SECRET = "cli-test-secret-0123456789-0123456789"


@pytest.fixture
def env(redis_url: str, namespace: str) -> Iterator[dict[str, str]]:
    yield {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_NAMESPACE": namespace,
        "FLASHSALE_JWT_SECRET": SECRET,
    }
    asyncio.run(delete_namespace(redis_url, namespace))


runner = CliRunner()


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_token(env: dict[str, str]) -> None:
    code, out = run(env, "token", "--user", "alice")
    assert code == 0
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and "role" not in claims
    code, out = run(env, "token", "--user", "ops", "--admin", "--ttl-s", "60")
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["role"] == "admin" and claims["exp"] - claims["iat"] == 60


def test_sale_create_status_tune(env: dict[str, str]) -> None:
    code, out = run(
        env,
        "sale",
        "create",
        "--name",
        "Genesis",
        "--sale-id",
        "g1",
        "--range",
        "1",
        "100",
        "--json",
    )
    assert code == 0, out
    sale = json.loads(out)
    assert sale["sale_id"] == "g1" and sale["total"] == 100
    code, out = run(
        env, "sale", "create", "--name", "again", "--sale-id", "g1", "--range", "1", "2"
    )
    assert code == 1 and "sale_exists" in out
    code, out = run(
        env, "sale", "tune", "g1", "--status", "paused", "--per-user-limit", "3", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["status"] == "paused" and json.loads(out)["per_user_limit"] == 3
    code, out = run(env, "sale", "tune", "g1", "--add-range", "101", "150", "--status", "open")
    assert code == 0, out
    code, out = run(env, "sale", "status", "g1", "--json")
    assert json.loads(out)["total"] == 150 and json.loads(out)["status"] == "open"
    code, out = run(env, "sale", "status")
    assert code == 0 and "g1" in out
    code, out = run(env, "sale", "status", "nope")
    assert code == 1 and "sale_not_found" in out


def test_sale_create_with_buckets(env: dict[str, str]) -> None:
    args = ["sale", "create", "--name", "hot", "--range", "1", "30", "--json"]
    code, out = run(env, *args, "--sale-id", "bk", "--buckets", "3")
    assert code == 0, out
    assert json.loads(out)["buckets"] == 3 and json.loads(out)["total"] == 30
    code, out = run(env, *args, "--buckets", "17")
    assert code == 2 and "validation_error" in out


def test_sale_refusals(env: dict[str, str]) -> None:
    code, out = run(env, "sale", "create", "--name", "x")
    assert code == 2 and "exactly one" in out
    code, out = run(env, "sale", "create", "--name", "x", "--range", "5", "1")
    assert code == 2 and "validation_error" in out
    code, out = run(env, "sale", "tune", "whatever")
    assert code == 2 and "nothing to change" in out
    code, out = run(env, "sale", "tune", "whatever", "--status", "gone")
    assert code == 2 and "validation_error" in out


def test_sale_create_from_a_long_list(env: dict[str, str], tmp_path: Path) -> None:
    serials = tmp_path / "serials.txt"
    serials.write_text("".join(f"NFT-{i:07d}\n" for i in range(50_000)))
    code, out = run(
        env,
        "sale",
        "create",
        "--name",
        "List",
        "--sale-id",
        "l1",
        "--list-file",
        str(serials),
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["total"] == 50_000


def test_a_serial_postgres_cannot_store_is_refused_naming_its_line(
    env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    for bad in (b"A-1\nA\x002\n", b"A-1\nA-\xff\n"):
        serials = tmp_path / "serials.txt"
        serials.write_bytes(bad)
        code, out = run(
            env, "sale", "create", "--name", "Bad", "--sale-id", "bad1", "--list-file", str(serials)
        )
        assert code == 2 and f"{serials}:2: a serial must be UTF-8 text without NUL" in out, out

    async def exists() -> bool:
        engine = Engine.from_url(redis_url, namespace=env["FLASHSALE_NAMESPACE"])
        try:
            return "bad1" in await engine.sale_ids()
        finally:
            await engine.aclose()

    assert not asyncio.run(exists())  # nothing created


def test_watch_shows_counts_rates_and_rejections(env: dict[str, str], redis_url: str) -> None:
    run(env, "sale", "create", "--name", "Watched", "--sale-id", "w1", "--range", "1", "10")

    async def activity() -> None:
        engine = Engine.from_url(redis_url, namespace=env["FLASHSALE_NAMESPACE"])
        try:
            await engine.purchase("w1", "u1")
            stats = SaleStats(engine.redis, engine.namespace)
            stats.count("w1", "created")
            stats.count("w1", "rej:sold_out")
            stats.count("w1", "rej:sold_out")
            await stats.flush()
        finally:
            await engine.aclose()

    asyncio.run(activity())
    # not a terminal: one plain line per sample, nothing cut
    code, out = run(env, "sale", "watch", "w1", "--iterations", "2", "--interval", "0.1")
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == 2, out
    for text in ("sale=w1", "available=9", "sold=0", "reserved=1", "lag=", "sold_out=2"):
        assert text in lines[1], (text, out)
    assert "rate=–" in lines[0] and "rate=0.0/s" in lines[1]
    code, out = run(env, "sale", "watch", "w1", "--iterations", "1", "--json")
    assert code == 0, out
    sample = json.loads(out)
    assert sample["sale"]["available"] == 9 and sample["rejections"] == {"sold_out": 2}
    # a terminal: the live view
    view = Console(record=True, width=100)

    async def render() -> None:
        engine = Engine.from_url(redis_url, namespace=env["FLASHSALE_NAMESPACE"])
        try:
            first = await sale_cli.sample(engine, "w1")
            view.print(sale_cli.watch_view(await sale_cli.sample(engine, "w1"), first))
        finally:
            await engine.aclose()

    asyncio.run(render())
    shown = view.export_text()
    for text in ("available", "sold", "reserved", "write-behind lag", "sold_out", "/s"):
        assert text in shown, (text, shown)


def test_status_never_cuts_ids(env: dict[str, str]) -> None:
    long_id = "a-very-long-sale-identifier-" + "x" * 36
    code, out = run(
        env, "sale", "create", "--name", "Long", "--sale-id", long_id, "--range", "1", "5"
    )
    assert code == 0, out
    assert long_id in out
    code, out = run(env, "sale", "status")
    assert code == 0 and long_id in out, out
    table = Console(record=True, width=80)
    table.print(sale_cli.sale_table([sale_cli_sale(env, long_id)]))
    assert long_id in table.export_text()


def sale_cli_sale(env: dict[str, str], sale_id: str) -> Sale:
    code, out = run(env, "sale", "status", sale_id, "--json")
    assert code == 0, out
    return msgspec.json.decode(out, type=Sale)


def test_serve_refuses_what_it_cannot_do(env: dict[str, str]) -> None:
    code, out = run(env, "serve", "--with-workers")
    assert code == 2 and "--with-workers" in out
    code, out = run({**env, "FLASHSALE_REDIS_URL": ""}, "serve")
    assert code == 2 and "FLASHSALE_REDIS_URL" in out
    for name, bad in (("SERVER", "hypercorn"), ("GRANIAN_RUNTIME_MODE", "fast")):
        code, out = run({**env, f"FLASHSALE_{name}": bad}, "serve")
        assert code == 2 and f"FLASHSALE_{name}" in out and bad in out, out


def test_verify_sequential_sale(env: dict[str, str]) -> None:
    run(env, "sale", "create", "--name", "Seq", "--sale-id", "v1", "--range", "1", "3")
    code, out = run(env, "verify", "v1")
    assert code == 0, out
    assert "verify v1: OK" in out
    code, out = run(env, "verify", "v1", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
