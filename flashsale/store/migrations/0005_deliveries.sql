-- 0005_deliveries: delivery on chain (flashsale/chain, docs/design.md#delivery-on-chain).
-- Buyers' addresses, each sale's ERC-721 contract, the minter's nonces and
-- transactions, and one delivery per paid order. The deliverer is the only
-- writer but for chain_addresses (the API).

CREATE TABLE chain_addresses (
    user_id     text PRIMARY KEY,
    address     text NOT NULL CHECK (address ~ '^0x[0-9a-fA-F]{40}$'),  -- EIP-55
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The chain the deliverer talks to: its identity and the newest block it saw
-- (a delivery's confirmations are counted against it).
CREATE TABLE chain_heads (
    chain_id      bigint PRIMARY KEY,
    genesis_hash  text NOT NULL,
    head          bigint NOT NULL,
    seen_at       timestamptz NOT NULL DEFAULT now()
);

-- The nonce manager: the next nonce of a sender, taken under this row's lock in
-- the same transaction that stores the signed transaction using it.
CREATE TABLE chain_nonces (
    chain_id    bigint NOT NULL,
    sender      text NOT NULL,
    next_nonce  bigint NOT NULL CHECK (next_nonce >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, sender)
);

-- One row per nonce used: the job it does (deploy a sale's contract, mint an
-- order's token) and its latest signed transaction (raw, to rebroadcast as it is).
-- A gas bump signs the same job and nonce again: every hash sent is in `hashes`.
CREATE TABLE chain_txs (
    chain_id         bigint NOT NULL,
    sender           text NOT NULL,
    nonce            bigint NOT NULL CHECK (nonce >= 0),
    purpose          text NOT NULL CHECK (purpose IN ('deploy', 'mint')),
    sale_id          text NOT NULL,
    order_id         text,
    status           text NOT NULL CHECK (status IN ('pending', 'mined', 'confirmed', 'lost')),
    tx_hash          text NOT NULL,
    raw              bytea NOT NULL,
    hashes           text[] NOT NULL,
    max_fee          bigint NOT NULL CHECK (max_fee > 0),
    priority_fee     bigint NOT NULL CHECK (priority_fee >= 0),
    bumps            integer NOT NULL DEFAULT 0,
    mined_hash       text,                       -- the version that landed
    block_number     bigint,
    block_hash       text,
    succeeded        boolean,                    -- receipt status; false: reverted
    sent_at          timestamptz,                -- last broadcast
    signed_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, sender, nonce),
    CHECK ((purpose = 'mint') = (order_id IS NOT NULL)),
    CHECK (status NOT IN ('mined', 'confirmed') OR block_number IS NOT NULL)
);
CREATE INDEX chain_txs_open ON chain_txs (chain_id, sender, nonce)
    WHERE status IN ('pending', 'mined');
CREATE INDEX chain_txs_by_order ON chain_txs (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE sale_contracts (
    sale_id       text PRIMARY KEY,
    chain_id      bigint NOT NULL,
    contract      text NOT NULL,                 -- EIP-55, known from sender and nonce
    sender        text NOT NULL,
    deploy_nonce  bigint NOT NULL,
    status        text NOT NULL CHECK (status IN ('deploying', 'deployed', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deployed_at   timestamptz
);

-- One per paid order. awaiting_address: the buyer has none yet; queued: about to
-- be sent; submitted: its transaction is out (chain_txs at `nonce`); confirmed:
-- minted with enough confirmations; failed: given up (an alert says why);
-- cancelled: the order stopped being paid before delivery started.
CREATE TABLE deliveries (
    order_id      text PRIMARY KEY,
    sale_id       text NOT NULL,
    user_id       text NOT NULL,
    token_id      numeric(78, 0) NOT NULL CHECK (token_id >= 0),   -- uint256
    status        text NOT NULL CHECK (status IN ('awaiting_address', 'queued', 'submitted',
                      'confirmed', 'failed', 'cancelled')),
    address       text,
    chain_id      bigint,
    sender        text,
    nonce         bigint,
    attempts      integer NOT NULL DEFAULT 0,    -- transactions signed for it (one nonce each)
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    CHECK (status IN ('awaiting_address', 'cancelled') OR address IS NOT NULL),
    CHECK (status NOT IN ('submitted', 'confirmed') OR nonce IS NOT NULL)
);
-- A token is delivered once: never two live deliveries of one token of a sale.
CREATE UNIQUE INDEX deliveries_one_per_token ON deliveries (sale_id, token_id)
    WHERE status <> 'cancelled';
CREATE INDEX deliveries_to_do ON deliveries (status, created_at)
    WHERE status IN ('awaiting_address', 'queued');
CREATE INDEX deliveries_by_user ON deliveries (user_id) WHERE status = 'awaiting_address';
-- the deliverer looks for paid orders without a delivery
CREATE INDEX orders_paid ON orders (persisted_at) WHERE status = 'paid';

-- Delivery failures of an alerting class (flashsale/chain/failures.py), as payment_alerts.
CREATE TABLE delivery_alerts (
    alert_id     bigserial PRIMARY KEY,
    class        text NOT NULL,
    severity     text NOT NULL,
    order_id     text,
    tx_hash      text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_alerts_by_class ON delivery_alerts (class, created_at);
