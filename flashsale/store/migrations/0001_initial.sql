-- 0001_initial: sales, orders, their history, and the write-behind's dead letters.
-- The migration runner wraps this file in one transaction and records it in
-- schema_migrations (created by the runner itself, see store/migrate.py).

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
    updated_at         timestamptz NOT NULL
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
                        'cancelled', 'refund_pending', 'refunded', 'delivered')),
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
CREATE UNIQUE INDEX orders_live_serial_key ON orders (sale_id, serial)
    WHERE status IN ('pending_payment', 'paid', 'delivered');
CREATE UNIQUE INDEX orders_live_buyer_key ON orders (sale_id, user_id)
    WHERE one_per_buyer AND status IN ('pending_payment', 'paid', 'delivered');
CREATE INDEX orders_sale_status_idx ON orders (sale_id, status);
CREATE INDEX orders_sale_user_idx ON orders (sale_id, user_id);

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
