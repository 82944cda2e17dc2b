-- 0009_orders_after_the_drop: merchants, checkouts (a cart split by merchant), bills,
-- the coins ledger, after-sales tickets (flashsale/orders, docs/design.md "Orders after
-- the drop"). Independent of the orders table (no foreign key): checkout rows are
-- written when the API answers, before the write-behind persists the orders.

-- Who sells a drop; bills are split by it. Sales made before merchants are the platform's.
ALTER TABLE sales ADD COLUMN merchant_id text NOT NULL DEFAULT 'platform';

-- A bill is paid by one payment (one debit, or one trade whose order_id is the bill's
-- id); each order it covers gets a payment of its own for its share, pointing at it
-- (a refund of a share goes back through the bill's trade).
ALTER TABLE payments ADD COLUMN parent_payment_id text;

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
    UNIQUE (checkout_id, position)
);

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
