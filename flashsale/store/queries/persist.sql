-- Queries of the write-behind consumer (store/persist.py, store/reclaim.py).

-- name: upsert_orders
-- One row per order (its highest version in the batch), non-live states first so a
-- serial released and resold within one batch never looks held twice. An event
-- older than the stored row changes nothing (WHERE orders.version < EXCLUDED.version).
INSERT INTO orders AS o (
    order_id, sale_id, user_id, serial, serial_kind, status, version,
    created_at, expires_at, updated_at, price_cents, currency, payment_id, reason, draw, ip,
    one_per_buyer)
SELECT r.order_id, r.sale_id, r.user_id, r.serial, r.serial_kind, r.status, r.version,
       timestamptz 'epoch' + r.created_ms * interval '1 millisecond',
       timestamptz 'epoch' + r.expires_ms * interval '1 millisecond',
       timestamptz 'epoch' + r.updated_ms * interval '1 millisecond',
       r.price_cents, r.currency, r.payment_id, r.reason, r.draw, r.ip,
       coalesce(s.max_per_user_limit = 1, false)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::int[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[],
            $13::text[], $14::text[], $15::bigint[], $16::text[])
     WITH ORDINALITY AS r(order_id, sale_id, user_id, serial, serial_kind, status, version,
                          created_ms, expires_ms, updated_ms, price_cents, currency,
                          payment_id, reason, draw, ip, n)
LEFT JOIN sales s ON s.sale_id = r.sale_id
ORDER BY r.n
ON CONFLICT (order_id) DO UPDATE SET
    status = EXCLUDED.status,
    version = EXCLUDED.version,
    expires_at = EXCLUDED.expires_at,
    updated_at = EXCLUDED.updated_at,
    payment_id = EXCLUDED.payment_id,
    reason = EXCLUDED.reason,
    persisted_at = now()
WHERE o.version < EXCLUDED.version;

-- name: insert_order_events
INSERT INTO order_events (order_id, version, type, status, at, stream_id)
SELECT r.order_id, r.version, r.type, r.status,
       timestamptz 'epoch' + r.at_ms * interval '1 millisecond', r.stream_id
FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[])
     AS r(order_id, version, type, status, at_ms, stream_id)
ON CONFLICT (order_id, version) DO NOTHING;

-- name: insert_sale_change
INSERT INTO sale_changes (sale_id, version, kind, actor, changes, at, stream_id)
VALUES ($1, $2, $3, $4, $5::jsonb, timestamptz 'epoch' + $6::bigint * interval '1 millisecond', $7)
ON CONFLICT (sale_id, version) DO NOTHING;

-- name: refresh_sale
-- The sales row is the fold of its changes in version order: each setting takes the
-- value of the highest version that set it, so changes applied out of order still
-- give the right row. Nothing happens until the creation (version 1) is known.
WITH latest AS (
    SELECT DISTINCT ON (kv.key) kv.key, kv.value
    FROM sale_changes c, jsonb_each_text(c.changes) AS kv(key, value)
    WHERE c.sale_id = $1
    ORDER BY kv.key, c.version DESC
), f AS (
    SELECT jsonb_object_agg(key, value) AS j FROM latest
), h AS (
    SELECT max(version) AS version, max(at) AS updated_at,
           max((changes ->> 'per_user_limit')::int) AS max_limit,
           min(at) FILTER (WHERE version = 1) AS created_at
    FROM sale_changes WHERE sale_id = $1
)
INSERT INTO sales AS s (
    sale_id, name, status, start_at, end_at, per_user_limit, max_per_user_limit, per_ip_limit,
    payment_timeout_s, price_cents, currency, assignment, commitment, total, version,
    created_at, updated_at, merchant_id)
SELECT $1, f.j ->> 'name', f.j ->> 'status',
       timestamptz 'epoch' + (f.j ->> 'start_ms')::bigint * interval '1 millisecond',
       CASE WHEN (f.j ->> 'end_ms')::bigint >= $2::bigint THEN NULL
            ELSE timestamptz 'epoch' + (f.j ->> 'end_ms')::bigint * interval '1 millisecond' END,
       (f.j ->> 'per_user_limit')::int, h.max_limit,
       nullif((f.j ->> 'per_ip_limit')::int, 0),
       (f.j ->> 'timeout_ms')::bigint / 1000,
       (f.j ->> 'price_cents')::bigint, f.j ->> 'currency', f.j ->> 'assignment',
       nullif(f.j ->> 'commitment', ''), (f.j ->> 'total')::bigint, h.version,
       h.created_at, h.updated_at, coalesce(f.j ->> 'merchant_id', 'platform')
FROM f, h
WHERE h.created_at IS NOT NULL
ON CONFLICT (sale_id) DO UPDATE SET
    name = EXCLUDED.name, status = EXCLUDED.status, start_at = EXCLUDED.start_at,
    end_at = EXCLUDED.end_at, per_user_limit = EXCLUDED.per_user_limit,
    max_per_user_limit = EXCLUDED.max_per_user_limit, per_ip_limit = EXCLUDED.per_ip_limit,
    payment_timeout_s = EXCLUDED.payment_timeout_s, price_cents = EXCLUDED.price_cents,
    currency = EXCLUDED.currency, assignment = EXCLUDED.assignment,
    commitment = EXCLUDED.commitment, total = EXCLUDED.total, version = EXCLUDED.version,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    merchant_id = EXCLUDED.merchant_id;

-- name: insert_dead_letter
INSERT INTO dead_letters (sale_id, stream_id, deliveries, reason, payload)
VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (sale_id, stream_id) DO NOTHING;
