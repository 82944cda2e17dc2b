-- Release (payments/release.py): what an order gives back once it is expired, cancelled
-- or refunded (its coins come back through coins.sql).

-- name: close_bills_of_order
-- An order of these bills expired, was cancelled or refunded: they cannot be paid whole.
UPDATE bills b SET status = 'closed', closed_reason = $2, updated_at = now()
  FROM checkout_orders o
 WHERE o.order_id = $1 AND b.checkout_id = o.checkout_id AND b.status = 'open'
   AND (b.kind = 'parent' OR b.merchant_id = o.merchant_id);
