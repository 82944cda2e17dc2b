-- Callbacks (payments/callbacks.py): a notice is answered 200 once it is durable here.

-- name: count_notice_delivery
-- A notice delivered again: returns what it was and the outcome it had the first time.
UPDATE callback_notices SET deliveries = deliveries + 1, last_seen_at = now()
 WHERE provider = $1 AND notify_id = $2
RETURNING outcome, payment_id, status;

-- name: payment_of_provider
SELECT * FROM payments WHERE payment_id = $1 AND provider = $2;

-- name: record_notice
INSERT INTO callback_notices (provider, notify_id, payment_id, status, outcome)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (provider, notify_id) DO UPDATE
   SET deliveries = callback_notices.deliveries + 1, last_seen_at = now();
