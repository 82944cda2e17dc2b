-- Expiry and cancellation (payments/cancellation.py).

-- name: open_attempts_of_order
-- with the trades of the open bills that pay it (flashsale/orders)
SELECT * FROM payments
 WHERE order_id = $1 AND status = 'pending' AND method = 'provider'
UNION ALL
SELECT p.* FROM checkout_orders o
  JOIN bills b ON b.checkout_id = o.checkout_id AND b.status = 'open'
             AND (b.kind = 'parent' OR b.merchant_id = o.merchant_id)
  JOIN payments p ON p.order_id = b.bill_id AND p.status = 'pending' AND p.method = 'provider'
 WHERE o.order_id = $1
 ORDER BY created_at;

-- name: payment_of_order
SELECT * FROM payments WHERE payment_id = $1 AND order_id = $2;

-- name: note_cancel_intent
-- Before the Redis step of a paid order's cancellation: what the timers finish after a crash.
UPDATE payments SET cancel_requested_at = now(), cancel_reason = $2 WHERE payment_id = $1;

-- name: clear_cancel_intent
UPDATE payments SET cancel_requested_at = NULL, cancel_reason = NULL WHERE payment_id = $1;

-- name: claim_stalled_cancels
-- Cancellations a crash cut in two, older than $2 s; claimed for another $2 s (a lease).
WITH due AS (
    SELECT payment_id FROM payments
     WHERE cancel_requested_at < now() - make_interval(secs => $2)
     ORDER BY cancel_requested_at LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE payments p SET cancel_requested_at = now()
  FROM due WHERE p.payment_id = due.payment_id
RETURNING p.*;

-- name: refund_status_of_payment
-- A paid order whose payment already had a refund decided (rejected: the order is paid
-- again) cannot ask for another: refunds are one per payment.
SELECT status FROM refunds WHERE payment_id = $1 AND status = 'rejected';
