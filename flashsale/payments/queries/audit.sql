-- Money audit of a sale (payments/audit.py).

-- name: audit_orders
-- Order states from PostgreSQL, when no engine is given (the orders table may be absent).
SELECT order_id, status, price_cents, payment_id FROM orders WHERE sale_id = $1;

-- name: audit_payments
-- overdue: succeeded more than $2 seconds ago (an unsettled one is then a violation).
SELECT *, succeeded_at < now() - make_interval(secs => $2) AS overdue
  FROM payments WHERE sale_id = $1;

-- name: audit_refunds
SELECT * FROM refunds WHERE sale_id = $1;

-- name: audit_coins
-- The coins each order of a checkout carries (it is paid its price less them).
SELECT order_id, coins_cents FROM checkout_orders WHERE sale_id = $1 AND coins_cents > 0;
