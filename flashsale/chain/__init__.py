"""Delivery on chain: each paid order's NFT minted to its buyer on an EVM chain.

- `contract`: the sale's ERC-721 (``contracts/FlashsaleDrop.sol``, compiled into
  ``artifacts/`` by the pinned solc-js in ``node/``) and the calls we encode;
- `addresses`: buyers' addresses (EIP-55), checked and stored;
- `rpc`: the JSON-RPC calls the deliverer makes (web3.py), with deadlines;
- `signer`: EIP-1559 signing and the fee policy (bumps);
- `ledger`: the nonce manager and the transactions in flight, in PostgreSQL;
- `deliverer` and `tracker`: ``flashsale deliver``, finding work, deploying,
  minting, and following each transaction until it is final;
- `moves`: the seam to the order's status in Redis (start, confirm, fail);
- `failures`: the alert classes; `views`: what the API shows.

The local development chain itself (hardhat's node, from ``node/``) is
``flashsale.devservers.chain``; ``flashsale chain`` runs it. Sits above
payments: it imports engine, store and payments' failure table, and only the
API and the CLI import it. See docs/design.md#delivery-on-chain.
"""
