"""The pieces around the deliverer: the contract build, the node command, addresses, settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flashsale.chain.addresses import checksummed, parse_address
from flashsale.chain.contract import contract_address
from flashsale.chain.rpc import ChainClient, ChainUnreachable, Sent, classify_refusal
from flashsale.chain.signer import FeePolicy, Fees
from flashsale.devservers import free_port
from flashsale.devservers.chain import DEV_ADDRESS, DEV_KEY, NODE_DIR
from flashsale.errors import ValidationFailed
from flashsale.settings import DEV_CHAIN_KEY, ConfigError, Settings


def test_the_committed_artifact_is_what_the_pinned_compiler_makes() -> None:
    done = subprocess.run(
        ["node", "compile.cjs", "--check"], cwd=NODE_DIR, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    artifact = json.loads((NODE_DIR.parent / "artifacts" / "FlashsaleDrop.json").read_text())
    assert artifact["compiler"].startswith("solc-js 0.8.30")
    assert {f["name"] for f in artifact["abi"] if f["type"] == "function"} >= {
        "mint", "ownerOf", "balanceOf", "transferFrom", "safeTransferFrom", "ownerOrZero",
    }  # fmt: skip


def test_flashsale_chain_prints_its_json_line_first_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashsale.cli.main", "chain", "--port", str(port)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first == {
            "rpc_url": f"http://127.0.0.1:{port}",
            "chain_id": 31337,
            "dev_key": DEV_KEY,
        }
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance",
                "params": [DEV_ADDRESS, "latest"]}  # fmt: skip
        balance = httpx.post(first["rpc_url"], json=body, trust_env=False).json()["result"]
        assert int(balance, 16) > 10**21  # funded
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{port}", json={}, trust_env=False, timeout=1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", DEV_ADDRESS),
        (DEV_ADDRESS, DEV_ADDRESS),
    ],
)
def test_an_address_is_taken_in_lower_case_or_eip55_and_given_in_eip55(
    raw: str, expected: str
) -> None:
    assert parse_address(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266",  # one letter's case wrong
        "0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266",  # all upper case carries no checksum
        "f39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb9226",
        "0x" + "0" * 40,
        "0x" + "z" * 40,
        "",
    ],
)
def test_a_bad_address_is_refused_with_validation_error(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_address(raw)


def test_checksum_and_contract_address_match_the_known_values() -> None:
    assert checksummed(DEV_ADDRESS.lower()) == DEV_ADDRESS
    # hardhat's first deployment from the development account
    assert contract_address(DEV_ADDRESS, 0) == "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_send_refusals_are_told_apart() -> None:
    assert classify_refusal("Known transaction: 0xab") is Sent.KNOWN
    assert classify_refusal("nonce too low") is Sent.NONCE_USED
    assert classify_refusal("Nonce too high. Expected nonce to be 3") is Sent.NONCE_AHEAD
    assert classify_refusal("replacement transaction underpriced") is Sent.UNDERPRICED
    assert classify_refusal("out of gas") is Sent.REFUSED


def test_a_bump_pays_at_least_twelve_and_a_half_percent_more_up_to_the_cap() -> None:
    policy = FeePolicy(cap=10_000)
    bumped = policy.bumped(Fees(1000, 100), base_fee=10, tip=1)
    assert bumped is not None and bumped.max_fee >= 1125 and bumped.priority_fee >= 112
    assert policy.bumped(Fees(10_000, 100), base_fee=10, tip=1) is None
    capped = policy.bumped(Fees(9_500, 100), base_fee=10, tip=1)
    assert capped is not None and capped.max_fee == 10_000


async def test_a_node_that_is_not_there_is_unreachable_not_an_error() -> None:
    client = ChainClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    try:
        with pytest.raises(ChainUnreachable):
            await client.head()
    finally:
        await client.close()


def test_the_chain_key_is_required_with_a_chain_url_outside_dev_mode() -> None:
    base = {"FLASHSALE_ENV": "prod", "FLASHSALE_JWT_SECRET": "j" * 40}
    Settings.from_env(base).require_secrets()  # no chain: no key needed
    with pytest.raises(ConfigError, match="FLASHSALE_CHAIN_KEY"):
        Settings.from_env(
            {**base, "FLASHSALE_CHAIN_URL": "http://127.0.0.1:8545"}
        ).require_secrets()
    with pytest.raises(ConfigError, match="development key"):
        Settings.from_env(
            {**base, "FLASHSALE_CHAIN_URL": "http://x", "FLASHSALE_CHAIN_KEY": DEV_CHAIN_KEY}
        ).require_secrets()
    strong = "0x" + "11" * 32
    env = {**base, "FLASHSALE_CHAIN_URL": "http://x", "FLASHSALE_CHAIN_KEY": strong}
    assert Settings.from_env(env).require_secrets().chain.key == strong
    dev = Settings.from_env({"FLASHSALE_ENV": "dev", "FLASHSALE_CHAIN_URL": "http://x"})
    assert dev.require_secrets().chain.key == DEV_CHAIN_KEY == DEV_KEY


def test_the_node_is_installed_from_the_projects_lock_file() -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    hardhat = lock["packages"]["node_modules/hardhat"]["version"]
    assert hardhat.startswith("2.")  # hardhat 3 needs Node.js 22; the machine has 20
    assert (NODE_DIR / "node_modules" / "hardhat" / "package.json").exists()
    assert Path(NODE_DIR / ".gitignore").read_text().startswith("node_modules/")


def test_serve_with_workers_runs_the_deliverer_and_a_local_chain_in_dev_mode() -> None:
    from flashsale.cli.supervisor import plan

    def children(environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        env = dict(environ)
        found = plan(Settings.from_env(environ), "127.0.0.1", 8000, 1, "granian", env)
        return [c.name for c in found], env

    dev = {"FLASHSALE_ENV": "dev"}
    names, env = children(dev)
    assert {"chain", "deliver"} <= set(names)
    assert env["FLASHSALE_CHAIN_URL"].startswith("http://127.0.0.1:")
    assert env["FLASHSALE_CHAIN_KEY"] == DEV_CHAIN_KEY
    names, env = children({**dev, "FLASHSALE_CHAIN_URL": "http://127.0.0.1:8545"})
    assert "deliver" in names and "chain" not in names
    prod = {"FLASHSALE_ENV": "prod", "FLASHSALE_JWT_SECRET": "j" * 40}
    names, _ = children(prod)
    assert "deliver" not in names and "chain" not in names
