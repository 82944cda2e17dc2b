-- Reference schema: what the migration chain (store/migrations/*.sql, applied by
-- store/migrate.py) must produce. tests/store/test_migrations.py compares the two,
-- so a change goes into a new migration AND here.

CREATE TABLE schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sales (
    sale_id            text PRIMARY KEY,
    name               text NOT NULL,
    status             text NOT NULL,              -- as stored in Redis: loading|open|paused|closed
    start_at           timestamptz NOT NULL,
    end_at             timestamptz,                -- NULL: no end
    per_user_limit     integer NOT NULL CHECK (per_user_limit >= 1),
    max_per_user_limit integer NOT NULL,           -- highest limit the sale ever had
    per_ip_limit       integer,                    -- NULL: off
    payment_timeout_s  integer NOT NULL CHECK (payment_timeout_s >= 1),
    price_cents        bigint NOT NULL CHECK (price_cents >= 0),
    currency           text NOT NULL,
    assignment         text NOT NULL CHECK (assignment IN ('sequential', 'random')),
    commitment         text,
    total              bigint NOT NULL CHECK (total >= 0),
    version            integer NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    merchant_id        text NOT NULL DEFAULT 'platform'  -- who sells it (0009)
);

-- Every change of a sale's settings, creation included (version 1), as recorded
-- by the engine: the sales row is the fold of these in version order.
CREATE TABLE sale_changes (
    sale_id    text NOT NULL,
    version    integer NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('sale_created', 'sale_tuned')),
    actor      text,
    changes    jsonb NOT NULL,
    at         timestamptz NOT NULL,
    stream_id  text NOT NULL,
    PRIMARY KEY (sale_id, version)
);

CREATE TABLE orders (
    order_id        text PRIMARY KEY,
    sale_id         text NOT NULL REFERENCES sales (sale_id),
    user_id         text NOT NULL,
    serial          text NOT NULL,
    serial_kind     "char" NOT NULL CHECK (serial_kind IN ('r', 'l')),
    status          text NOT NULL CHECK (status IN ('pending_payment', 'paid', 'expired',
                        'cancelled', 'refund_pending', 'refunded', 'delivering', 'delivered',
                        'completed')),  -- 0007
    version         integer NOT NULL CHECK (version >= 1),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    currency        text NOT NULL,
    payment_id      text,
    reason          text,
    draw            bigint,                        -- NULL: a released serial sold again
    ip              text,
    -- true when the order was bought while the sale had never allowed more
    -- than one order per buyer: such orders are unique per (sale, buyer) while live
    one_per_buyer   boolean NOT NULL DEFAULT false,
    persisted_at    timestamptz NOT NULL DEFAULT now()
);

-- The last line of defence against a double sale, even if Redis were wrong.
-- Live: every status that holds a serial, refund_pending (0003) and delivery's (0007)
-- included.
CREATE UNIQUE INDEX orders_live_serial_key ON orders (sale_id, serial)
    WHERE status IN ('pending_payment', 'paid', 'delivering', 'delivered', 'completed',
                     'refund_pending');
CREATE UNIQUE INDEX orders_live_buyer_key ON orders (sale_id, user_id)
    WHERE one_per_buyer AND status IN ('pending_payment', 'paid', 'delivering', 'delivered',
                                       'completed', 'refund_pending');
CREATE INDEX orders_sale_status_idx ON orders (sale_id, status, created_at, order_id);  -- 0006
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at, order_id);  -- 0008
CREATE INDEX orders_sale_user_idx ON orders (sale_id, user_id);
-- the admin listings (0006): a sale's orders newest first, and by serial
CREATE INDEX orders_sale_created_idx ON orders (sale_id, created_at, order_id);
CREATE INDEX orders_sale_serial_idx ON orders (sale_id, serial);

-- Each transition an order went through, as appended to the sale's stream.
CREATE TABLE order_events (
    order_id   text NOT NULL,
    version    integer NOT NULL,
    type       text NOT NULL,
    status     text NOT NULL,
    at         timestamptz NOT NULL,
    stream_id  text NOT NULL,
    PRIMARY KEY (order_id, version)
);

-- Stream entries the write-behind gave up on (also kept in Redis' dead-letter stream).
CREATE TABLE dead_letters (
    sale_id     text NOT NULL,
    stream_id   text NOT NULL,
    deliveries  integer NOT NULL,
    reason      text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sale_id, stream_id)
);

-- ---------------------------------------------------------------------------
-- Payments (0002_payments)
-- ---------------------------------------------------------------------------

CREATE TABLE payments (
    payment_id          text PRIMARY KEY,          -- also the provider's out_trade_no
    order_id            text NOT NULL,
    sale_id             text NOT NULL,
    user_id             text NOT NULL,
    method              text NOT NULL CHECK (method IN ('provider', 'balance')),
    provider            text,                      -- 'sim'; NULL for balance payments
    status              text NOT NULL CHECK (status IN
                            ('pending', 'succeeded', 'closed', 'failed', 'reversed')),
    amount_cents        bigint NOT NULL CHECK (amount_cents >= 0),
    currency            text NOT NULL,
    captured_cents      bigint CHECK (captured_cents >= 0),  -- what the provider says it took
    provider_trade_no   text UNIQUE,
    pay_url             text,
    -- what became of a succeeded payment: kept by its order, or owed back (a refund row)
    settlement          text CHECK (settlement IN ('kept', 'refund')),
    next_query_at       timestamptz,               -- active query / repair schedule (lease)
    query_attempts      integer NOT NULL DEFAULT 0,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    succeeded_at        timestamptz,
    provider_paid_at    timestamptz,
    settled_at          timestamptz,
    confirmed_via       text,                      -- callback | query | close | balance
    cancel_requested_at timestamptz,               -- a paid order's cancellation in flight (0008)
    cancel_reason       text,
    parent_payment_id   text,                      -- a bill's share: the bill's payment (0009)
    CHECK (method = 'balance' OR provider IS NOT NULL),
    CHECK (status <> 'succeeded' OR captured_cents IS NOT NULL),
    CHECK (settlement IS NULL OR status IN ('succeeded', 'reversed'))
);
-- Invariant 6: an order keeps at most one payment.
CREATE UNIQUE INDEX payments_one_kept_per_order ON payments (order_id) WHERE settlement = 'kept';
CREATE INDEX payments_by_order ON payments (order_id);
CREATE INDEX payments_by_sale ON payments (sale_id);
CREATE INDEX payments_due_query ON payments (next_query_at)
    WHERE status = 'pending' AND method = 'provider';
CREATE INDEX payments_unsettled ON payments (next_query_at)
    WHERE status = 'succeeded' AND settlement IS NULL;
CREATE INDEX payments_cancel_intent ON payments (cancel_requested_at)  -- 0008
    WHERE cancel_requested_at IS NOT NULL;

CREATE TABLE wallets (
    user_id        text NOT NULL,
    currency       text NOT NULL,
    balance_cents  bigint NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, currency)
);

-- Every movement of a wallet is one row; balance_cents == sum(amount_cents).
CREATE TABLE wallet_entries (
    entry_id             bigserial PRIMARY KEY,
    user_id              text NOT NULL,
    currency             text NOT NULL,
    amount_cents         bigint NOT NULL CHECK (amount_cents <> 0),   -- signed
    balance_after_cents  bigint NOT NULL CHECK (balance_after_cents >= 0),
    kind                 text NOT NULL CHECK (kind IN ('credit', 'debit', 'reversal', 'refund')),
    payment_id           text,
    refund_id            text,
    reason               text NOT NULL DEFAULT '',
    actor                text NOT NULL DEFAULT '',
    idempotency_key      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, currency) REFERENCES wallets (user_id, currency)
);
CREATE INDEX wallet_entries_by_wallet ON wallet_entries (user_id, currency, entry_id DESC);
-- exactly once: one debit and one reversal per payment, one credit per refund
CREATE UNIQUE INDEX wallet_entries_once_per_payment ON wallet_entries (payment_id, kind)
    WHERE payment_id IS NOT NULL;
CREATE UNIQUE INDEX wallet_entries_once_per_refund ON wallet_entries (refund_id)
    WHERE refund_id IS NOT NULL;
CREATE UNIQUE INDEX wallet_entries_idempotent_credit ON wallet_entries (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE payment_passwords (
    user_id          text PRIMARY KEY,
    password_hash    text NOT NULL,                -- argon2id, PHC string
    failed_attempts  integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refunds (
    refund_id          text PRIMARY KEY,           -- also the provider's refund_no
    payment_id         text NOT NULL UNIQUE REFERENCES payments (payment_id),
    order_id           text NOT NULL,
    sale_id            text NOT NULL,
    user_id            text NOT NULL,
    method             text NOT NULL,
    amount_cents       bigint NOT NULL CHECK (amount_cents >= 0),
    currency           text NOT NULL,
    reason             text NOT NULL,              -- a failure class: duplicate_payment, late_payment, ...
    detail             text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'approved', 'rejected', 'refunded')),
    cancels_order      boolean NOT NULL DEFAULT false,  -- the order waits in refund_pending
    order_settled      boolean NOT NULL DEFAULT false,  -- its Redis transition is done
    created_at         timestamptz NOT NULL DEFAULT now(),
    decided_at         timestamptz,
    decided_by         text,
    decision_note      text,
    executed_at        timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz,
    last_error         text,
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX refunds_by_status ON refunds (status, created_at);
CREATE INDEX refunds_by_sale ON refunds (sale_id);
CREATE INDEX refunds_to_execute ON refunds (next_attempt_at) WHERE status = 'approved';
CREATE INDEX refunds_order_unsettled ON refunds (decided_at)
    WHERE cancels_order AND NOT order_settled AND status IN ('rejected', 'refunded');

-- Notices processed, by the provider's notify_id (the same on every redelivery).
CREATE TABLE callback_notices (
    provider      text NOT NULL,
    notify_id     text NOT NULL,
    payment_id    text,
    status        text NOT NULL,
    outcome       text NOT NULL,
    deliveries    integer NOT NULL DEFAULT 1,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, notify_id)
);

CREATE TABLE payment_alerts (
    alert_id     bigserial PRIMARY KEY,
    class        text NOT NULL,
    severity     text NOT NULL,
    order_id     text,
    payment_id   text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_alerts_by_class ON payment_alerts (class, created_at);

-- ---------------------------------------------------------------------------
-- Delivery on chain (0005_deliveries)
-- ---------------------------------------------------------------------------

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
-- given up, for the operator (0011)
CREATE INDEX deliveries_given_up ON deliveries (updated_at) WHERE status = 'failed';
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

-- ---------------------------------------------------------------------------
-- Admin desk (0006_admin)
-- ---------------------------------------------------------------------------

-- Who unlocked or reset a buyer's payment password, when, and why.
CREATE TABLE payment_password_actions (
    action_id  bigserial PRIMARY KEY,
    user_id    text NOT NULL,
    action     text NOT NULL CHECK (action IN ('unlock', 'reset')),
    actor      text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_password_actions_by_user ON payment_password_actions (user_id, action_id);

-- ---------------------------------------------------------------------------
-- Orders after the drop (0009_orders_after_the_drop): coins, checkouts, bills,
-- after-sales (sales.merchant_id is above)
-- ---------------------------------------------------------------------------

-- Coins: platform money beside the balance, one balance per buyer and currency, a ledger
-- row per movement (coin_balance == sum(amount_cents)), never negative.
CREATE TABLE coin_wallets (
    user_id      text NOT NULL,
    currency     text NOT NULL,
    coins_cents  bigint NOT NULL DEFAULT 0 CHECK (coins_cents >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, currency)
);
CREATE TABLE coin_entries (
    entry_id             bigserial PRIMARY KEY,
    user_id              text NOT NULL,
    currency             text NOT NULL,
    amount_cents         bigint NOT NULL CHECK (amount_cents <> 0),   -- signed
    balance_after_cents  bigint NOT NULL CHECK (balance_after_cents >= 0),
    kind                 text NOT NULL CHECK (kind IN ('credit', 'spend', 'return')),
    checkout_id          text,
    order_id             text,
    reason               text NOT NULL DEFAULT '',
    actor                text NOT NULL DEFAULT '',
    idempotency_key      text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, currency) REFERENCES coin_wallets (user_id, currency)
);
CREATE INDEX coin_entries_by_wallet ON coin_entries (user_id, currency, entry_id DESC);
-- exactly once: one spend per checkout, one return per order, one credit per key
CREATE UNIQUE INDEX coin_entries_spend_once ON coin_entries (checkout_id) WHERE kind = 'spend';
CREATE UNIQUE INDEX coin_entries_return_once ON coin_entries (order_id) WHERE kind = 'return';
CREATE UNIQUE INDEX coin_entries_idempotent_credit ON coin_entries (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A checkout: the parent order of a cart; its answer is kept for Idempotency-Key replays.
CREATE TABLE checkouts (
    checkout_id      text PRIMARY KEY,
    user_id          text NOT NULL,
    currency         text NOT NULL,
    goods_cents      bigint NOT NULL CHECK (goods_cents >= 0),
    coins_cents      bigint NOT NULL CHECK (coins_cents >= 0 AND coins_cents <= goods_cents),
    idempotency_key  text,
    fingerprint      text NOT NULL DEFAULT '',
    answer           jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX checkouts_idempotency ON checkouts (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One row per order (serial) of a checkout: its merchant and its share of the coins.
CREATE TABLE checkout_orders (
    order_id      text PRIMARY KEY,
    checkout_id   text NOT NULL REFERENCES checkouts (checkout_id),
    sale_id       text NOT NULL,
    merchant_id   text NOT NULL,
    position      integer NOT NULL,
    price_cents   bigint NOT NULL CHECK (price_cents >= 0),
    coins_cents   bigint NOT NULL CHECK (coins_cents >= 0 AND coins_cents <= price_cents),
    UNIQUE (checkout_id, position),
    -- set before a transition that may release the order, cleared once its coins are
    -- back and its bills closed (0011; the timers finish what a crash cut)
    release_started_at timestamptz
);
CREATE INDEX checkout_orders_release_started ON checkout_orders (release_started_at)
    WHERE release_started_at IS NOT NULL;

-- The parent bill of a checkout and one bill per merchant; sums over their orders.
CREATE TABLE bills (
    bill_id       text PRIMARY KEY,
    checkout_id   text NOT NULL REFERENCES checkouts (checkout_id),
    kind          text NOT NULL CHECK (kind IN ('parent', 'merchant')),
    merchant_id   text,
    user_id       text NOT NULL,
    currency      text NOT NULL,
    goods_cents   bigint NOT NULL CHECK (goods_cents >= 0),
    coins_cents   bigint NOT NULL CHECK (coins_cents >= 0),
    to_pay_cents  bigint NOT NULL CHECK (to_pay_cents >= 0),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'closed')),
    payment_id    text,                 -- the payment that paid it (one trade or one debit)
    closed_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'parent') = (merchant_id IS NULL)),
    CHECK (goods_cents = coins_cents + to_pay_cents)
);
CREATE UNIQUE INDEX bills_one_per_merchant ON bills (checkout_id, coalesce(merchant_id, ''));
CREATE INDEX bills_open_by_checkout ON bills (checkout_id) WHERE status = 'open';

-- After-sales: one ticket per complaint, evidence stored by content hash.
CREATE TABLE after_sales_tickets (
    ticket_id    text PRIMARY KEY,
    order_id     text NOT NULL,
    sale_id      text NOT NULL,
    user_id      text NOT NULL,
    reason       text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'rejected')),
    decided_at   timestamptz,
    decided_by   text,
    note         text,
    refund_id    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (decided_at IS NULL))
);
-- one open ticket per order
CREATE UNIQUE INDEX after_sales_one_open ON after_sales_tickets (order_id) WHERE status = 'open';
CREATE INDEX after_sales_by_status ON after_sales_tickets (status, created_at);

CREATE TABLE evidence_blobs (
    sha256        text PRIMARY KEY,
    content_type  text NOT NULL,
    bytes         bigint NOT NULL CHECK (bytes >= 0),
    data          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE after_sales_evidence (
    evidence_id  text PRIMARY KEY,
    ticket_id    text NOT NULL REFERENCES after_sales_tickets (ticket_id),
    position     integer NOT NULL,
    sha256       text NOT NULL REFERENCES evidence_blobs (sha256),
    UNIQUE (ticket_id, position)
);
