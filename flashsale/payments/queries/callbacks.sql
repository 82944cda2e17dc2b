-- Callbacks (payments/callbacks.py): a notice is answered 200 once it is durable here.

-- name: remember_signature
-- Returns a row only the first time a signature is seen: a replay returns nothing.
INSERT INTO callback_signatures (provider, digest) VALUES ($1, $2)
ON CONFLICT DO NOTHING
RETURNING 1;

-- name: count_notice_delivery
-- A notice delivered again: returns the outcome it had the first time.
UPDATE callback_notices SET deliveries = deliveries + 1, last_seen_at = now()
 WHERE provider = $1 AND notify_id = $2
RETURNING outcome;

-- name: payment_of_provider
SELECT * FROM payments WHERE payment_id = $1 AND provider = $2;

-- name: record_notice
INSERT INTO callback_notices (provider, notify_id, payment_id, status, outcome)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (provider, notify_id) DO UPDATE
   SET deliveries = callback_notices.deliveries + 1, last_seen_at = now();
