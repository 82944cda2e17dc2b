-- Release (payments/release.py): what an order gives back once it is expired, cancelled
-- or refunded (its coins come back through coins.sql).

-- name: note_release
-- Before the Redis transition that may release the order (expiry, cancel): what the
-- timers finish if a crash comes between that transition and order_released. A no-op
-- for an order outside any checkout (nothing to give back).
UPDATE checkout_orders SET release_started_at = now()
 WHERE order_id = $1 AND release_started_at IS NULL;

-- name: close_bills_of_order
-- An order of these bills expired, was cancelled or refunded: they cannot be paid whole.
-- Its release is done once this ran (its coins came back first): the intent is cleared.
WITH done AS (
    UPDATE checkout_orders SET release_started_at = NULL
     WHERE order_id = $1 AND release_started_at IS NOT NULL)
UPDATE bills b SET status = 'closed', closed_reason = $2, updated_at = now()
  FROM checkout_orders o
 WHERE o.order_id = $1 AND b.checkout_id = o.checkout_id AND b.status = 'open'
   AND (b.kind = 'parent' OR b.merchant_id = o.merchant_id);

-- name: clear_release
-- The order was found not released (the transition never happened, or lost to a payment).
UPDATE checkout_orders SET release_started_at = NULL WHERE order_id = $1;

-- name: claim_stalled_releases
-- Releases a crash may have cut, started over $2 s ago; claimed for another $2 s (a lease).
UPDATE checkout_orders SET release_started_at = now()
 WHERE order_id IN (
       SELECT order_id FROM checkout_orders
        WHERE release_started_at < now() - make_interval(secs => $2)
        ORDER BY release_started_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING order_id;
