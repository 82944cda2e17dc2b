"""A private EVM development chain: hardhat's node, from the project's own npm files.

The node comes from the npm registry, pinned in ``flashsale/chain/node/``
(package.json and package-lock.json; ``make setup`` runs ``npm ci`` there), and
runs on the machine's Node.js: hardhat 2 (hardhat 3 needs Node.js 22). It keeps
its chain in memory, so a stopped node's chain is gone; `pause()` and
`resume()` (SIGSTOP, SIGCONT) make it hang without losing anything.

Chain id 31337; the first of hardhat's well-known development accounts
(`DEV_KEY`, 10,000 ETH) is funded. Besides a block per transaction, a block is
mined every `block_ms` (0: none), so confirmations accrue without traffic.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from flashsale.devservers.errors import EmbeddedServerError
from flashsale.devservers.ports import HOST
from flashsale.devservers.process import ServerProcess

CHAIN_ID = 31337
# hardhat's first development account: public knowledge, never use it on a real network
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
# the project's npm files (a path, not an import: devservers imports no other package)
NODE_DIR = Path(__file__).resolve().parents[1] / "chain" / "node"


def find_hardhat(node_dir: Path = NODE_DIR) -> tuple[Path, Path]:
    """(node, hardhat's cli.js) as installed by ``npm ci`` in ``node_dir``."""
    node = shutil.which("node")
    if node is None:
        raise EmbeddedServerError("no `node` on PATH: install Node.js 20 (apt install nodejs)")
    cli = node_dir / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"
    if not cli.exists():
        raise EmbeddedServerError(
            f"hardhat is not installed in {node_dir}: run `make setup` (npm ci there)"
        )
    return Path(node), cli


class EmbeddedChain(ServerProcess):
    """hardhat's node on 127.0.0.1, its cache in its own directory."""

    _kind = "chain"
    _stale_signal = signal.SIGTERM
    _default_timeout = 60.0
    _clash_markers = ("EADDRINUSE",)

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        block_ms: int = 1000,
        die_with_parent: bool = True,
        node_dir: Path = NODE_DIR,
    ) -> None:
        super().__init__(port, workdir, die_with_parent)
        self.block_ms = block_ms
        self.node_dir = node_dir
        self._node, self._cli = find_hardhat(node_dir)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    chain_id = CHAIN_ID
    dev_key = DEV_KEY
    dev_address = DEV_ADDRESS

    def start(self, timeout: float | None = None) -> None:
        """Start and wait until the node answers ``eth_chainId``."""
        self._start((), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._signal_and_wait(signal.SIGTERM, timeout)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call (tests' helpers: evm_mine, evm_snapshot, ...); its result."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        with httpx.Client(trust_env=False, timeout=10.0) as client:
            reply = client.post(self.url, json=body).json()
        if "error" in reply:
            raise EmbeddedServerError(f"{method}: {reply['error']}")
        return reply["result"]

    @property
    def _cwd(self) -> Path:
        return self.node_dir  # hardhat finds its project (node_modules) from here

    def _argv(self, extra_args: Sequence[str]) -> list[str]:
        config = self.node_dir / "hardhat.config.cjs"
        return [
            str(self._node), str(self._cli), "--config", str(config),
            "node", "--hostname", HOST, "--port", str(self.port), *extra_args,
        ]  # fmt: skip

    def _spawn_kwargs(self) -> dict[str, Any]:
        env = dict(os.environ)
        env.update(
            CHAIN_BLOCK_MS=str(self.block_ms),
            CHAIN_CACHE_DIR=str(self.dir / "cache"),
            HARDHAT_DISABLE_TELEMETRY_PROMPT="true",
        )
        return {"env": env}

    def _is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            with httpx.Client(trust_env=False, timeout=0.5) as client:
                reply = client.post(self.url, json=body)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200 and reply.json().get("result") == hex(CHAIN_ID)


__all__ = ["CHAIN_ID", "DEV_ADDRESS", "DEV_KEY", "NODE_DIR", "EmbeddedChain", "find_hardhat"]
