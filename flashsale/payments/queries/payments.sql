-- Reads every part of the payment flow shares (payments/context.py), and the alert log.

-- name: payment_by_id
SELECT * FROM payments WHERE payment_id = $1;

-- name: payments_of_order
SELECT * FROM payments WHERE order_id = $1 ORDER BY created_at, payment_id;

-- name: insert_alert
-- A failure of an alerting class; $5 is the failure's fields as JSON text.
INSERT INTO payment_alerts (class, severity, order_id, payment_id, detail)
VALUES ($1, $2, $3, $4, $5::jsonb);
