-- Money audit of a sale (payments/audit.py): aggregates, and the rest in pages.

-- name: audit_totals
-- Every sum the identity needs, and the counts of the report, server-side.
SELECT
  (SELECT count(*) FROM payments WHERE sale_id = $1) AS payments,
  (SELECT COALESCE(SUM(captured_cents), 0) FROM payments
    WHERE sale_id = $1 AND status = 'succeeded') AS captured,
  (SELECT count(*) FROM payments
    WHERE sale_id = $1 AND status = 'succeeded' AND settlement IS NULL) AS unsettled,
  (SELECT COALESCE(SUM(amount_cents), 0) FROM refunds
    WHERE sale_id = $1 AND status <> 'rejected') AS refunds,
  (SELECT COALESCE(SUM(amount_cents), 0) FROM refunds
    WHERE sale_id = $1 AND status = 'rejected' AND NOT cancels_order) AS retained,
  (SELECT count(*) FROM refunds WHERE sale_id = $1 AND status = 'pending') AS refunds_pending;

-- name: audit_payment_faults
-- Payments wrong on their own (a few examples): succeeded and unsettled for over $2 s,
-- owing a refund without a refund row, or a second payment kept by one order.
(SELECT 'unsettled' AS fault, payment_id, order_id FROM payments
  WHERE sale_id = $1 AND status = 'succeeded' AND settlement IS NULL
    AND succeeded_at < now() - make_interval(secs => $2)
  ORDER BY payment_id LIMIT $3)
UNION ALL
(SELECT 'refund_row_missing', p.payment_id, p.order_id FROM payments p
  WHERE p.sale_id = $1 AND p.settlement = 'refund'
    AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.payment_id)
  ORDER BY p.payment_id LIMIT $3)
UNION ALL
(SELECT 'kept_twice', min(payment_id), order_id FROM payments
  WHERE sale_id = $1 AND settlement = 'kept'
  GROUP BY order_id HAVING count(*) > 1 ORDER BY order_id LIMIT $3);

-- name: audit_kept_page
-- A page of the sale's kept payments after payment $2 (keyset), with the order as
-- PostgreSQL has it (the write-behind's copy: NULL columns when absent or no table)
-- and whether a refund row cancels that order.
SELECT p.payment_id, p.order_id, p.captured_cents,
       o.status AS pg_status, o.price_cents AS pg_price,
       COALESCE((SELECT c.coins_cents FROM checkout_orders c WHERE c.order_id = p.order_id), 0)
           AS coins,
       EXISTS (SELECT 1 FROM refunds r
                WHERE r.payment_id = p.payment_id AND r.cancels_order) AS cancel_refund
  FROM payments p
  LEFT JOIN orders o ON o.order_id = p.order_id
 WHERE p.sale_id = $1 AND p.settlement = 'kept' AND p.payment_id > $2
 ORDER BY p.payment_id
 LIMIT $3;

-- name: audit_orders_without_payment
-- Orders PostgreSQL has as paid (or refunding) with no kept payment of their own: a
-- few candidates, checked against Redis before they are reported.
SELECT o.order_id FROM orders o
 WHERE o.sale_id = $1 AND o.status = ANY($2::text[])
   AND NOT EXISTS (SELECT 1 FROM payments p
                    WHERE p.payment_id = o.payment_id AND p.order_id = o.order_id
                      AND p.settlement = 'kept')
 ORDER BY o.order_id
 LIMIT $3;

-- name: audit_coins
-- The coins each order of a checkout carries (it is paid its price less them), with the
-- order as PostgreSQL has it. returned: given back (expired, cancelled or refunded).
SELECT c.order_id, c.coins_cents,
       EXISTS (SELECT 1 FROM coin_entries e WHERE e.order_id = c.order_id AND e.kind = 'return')
           AS returned,
       o.status AS pg_status, o.updated_at AS pg_updated
  FROM checkout_orders c
  LEFT JOIN orders o ON o.order_id = c.order_id
 WHERE c.sale_id = $1 AND c.coins_cents > 0;
