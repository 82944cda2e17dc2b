-- 0002_payments: payment attempts, wallets and their ledger, payment passwords,
-- refunds for operator review, callbacks seen, alerts.
--
-- Independent of 0001 (no foreign key into its tables): payments key on the
-- order_id the API returned, which carries its sale (`<sale_id>.<hash>`).
-- Every state change in payments/ is a conditional UPDATE whose affected rows
-- are checked; the constraints below are the last line of defence.

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

-- Replays: each delivery is signed afresh, so a signature seen twice is a replay.
CREATE TABLE callback_signatures (
    provider    text NOT NULL,
    digest      bytea NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, digest)
);
CREATE INDEX callback_signatures_by_age ON callback_signatures (seen_at);

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
