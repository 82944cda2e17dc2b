-- Expiry and cancellation (payments/cancellation.py).

-- name: open_attempts_of_order
SELECT * FROM payments
 WHERE order_id = $1 AND status = 'pending' AND method = 'provider'
 ORDER BY created_at;

-- name: payment_of_order
SELECT * FROM payments WHERE payment_id = $1 AND order_id = $2;
