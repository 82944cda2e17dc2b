-- Money audit of a sale (payments/audit.py).

-- name: audit_orders
-- Order states from PostgreSQL, when no engine is given (the orders table may be absent).
SELECT order_id, status, price_cents, payment_id, updated_at FROM orders WHERE sale_id = $1;

-- name: audit_payments
-- overdue: succeeded more than $2 seconds ago (an unsettled one is then a violation).
SELECT *, succeeded_at < now() - make_interval(secs => $2) AS overdue
  FROM payments WHERE sale_id = $1;

-- name: audit_refunds
SELECT * FROM refunds WHERE sale_id = $1;

-- name: audit_coins
-- The coins each order of a checkout carries (it is paid its price less them).
-- returned: given back (the order expired, was cancelled or refunded).
SELECT o.order_id, o.coins_cents,
       EXISTS (SELECT 1 FROM coin_entries e WHERE e.order_id = o.order_id AND e.kind = 'return')
           AS returned
  FROM checkout_orders o WHERE o.sale_id = $1 AND o.coins_cents > 0;
