-- Queries of the audit (store/audit/): every one runs server-side over indexes,
-- so the audit of a 1,000,000-order sale moves counts and examples, not rows.

-- name: audit_sale
SELECT total, per_user_limit, max_per_user_limit, per_ip_limit, version,
       (SELECT bool_and((changes ->> 'per_ip_limit')::int > 0)
          FROM sale_changes c WHERE c.sale_id = $1 AND c.changes ? 'per_ip_limit')
           AS ip_limit_always_on,
       (SELECT max((changes ->> 'per_ip_limit')::int)
          FROM sale_changes c WHERE c.sale_id = $1) AS max_per_ip_limit
FROM sales WHERE sale_id = $1;

-- name: audit_status_counts
SELECT status, count(*) AS n FROM orders WHERE sale_id = $1 GROUP BY status;

-- name: audit_kept_count
-- Orders refunded after delivery (event refunded_after_delivery): their token stays with
-- the buyer, so their serial stays counted in the sale's sold (Redis meta "kept").
SELECT count(*) FROM orders o
WHERE o.sale_id = $1 AND o.status = 'refunded'
  AND EXISTS (SELECT 1 FROM order_events e
              WHERE e.order_id = o.order_id AND e.type = 'refunded_after_delivery');

-- name: audit_live_serial_twice
-- Invariant 2: no serial held by two live orders (the unique index should make this empty).
-- Live here and below: the statuses that hold a serial, refund_pending included.
SELECT serial, count(*) AS n, array_agg(order_id ORDER BY order_id) AS orders
FROM orders
WHERE sale_id = $1 AND status IN ('pending_payment', 'paid', 'delivering', 'delivered', 'completed',
                                       'refund_pending')
GROUP BY serial HAVING count(*) > 1
ORDER BY serial LIMIT 20;

-- name: audit_buyers_over_limit
-- Invariant 3: no buyer over the highest per-user limit the sale ever had. An order
-- refunded after delivery still counts: its buyer holds the token (as Redis counts it).
SELECT user_id, count(*) AS n
FROM orders o
WHERE sale_id = $1 AND (status IN ('pending_payment', 'paid', 'delivering', 'delivered',
                                   'completed', 'refund_pending')
                        OR status = 'refunded' AND EXISTS (
                            SELECT 1 FROM order_events e WHERE e.order_id = o.order_id
                              AND e.type = 'refunded_after_delivery'))
GROUP BY user_id HAVING count(*) > $2
ORDER BY n DESC, user_id LIMIT 20;

-- name: audit_ips_over_limit
SELECT ip, count(*) AS n
FROM orders o
WHERE sale_id = $1 AND ip IS NOT NULL
  AND (status IN ('pending_payment', 'paid', 'delivering', 'delivered', 'completed',
                  'refund_pending')
       OR status = 'refunded' AND EXISTS (
           SELECT 1 FROM order_events e WHERE e.order_id = o.order_id
             AND e.type = 'refunded_after_delivery'))
GROUP BY ip HAVING count(*) > $2
ORDER BY n DESC, ip LIMIT 20;

-- name: audit_compare
-- Orders as Redis has them (one chunk) against PostgreSQL: only the differences come back.
SELECT r.order_id, r.status AS redis_status, r.version AS redis_version,
       o.status AS pg_status, o.version AS pg_version
FROM unnest($2::text[], $3::text[], $4::int[]) AS r(order_id, status, version)
LEFT JOIN orders o ON o.order_id = r.order_id AND o.sale_id = $1
WHERE o.order_id IS NULL OR o.version <> r.version OR o.status <> r.status;

-- name: audit_pool_serials_held
-- Serials waiting in Redis' pool of released serials must not be held by a live order.
SELECT o.serial, o.order_id
FROM unnest($2::text[]) AS p(serial)
JOIN orders o ON o.sale_id = $1 AND o.serial = p.serial
           AND o.status IN ('pending_payment', 'paid', 'delivering', 'delivered', 'completed',
                                       'refund_pending')
LIMIT 20;

-- name: audit_dead_letters
SELECT count(*) FROM dead_letters WHERE sale_id = $1;
