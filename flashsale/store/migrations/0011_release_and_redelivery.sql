-- 0011_release_and_redelivery: an order of a checkout that expires, is cancelled or refunded gives
-- its coins back and closes its open bills right after its Redis transition
-- (payments/release.py). A crash between the two left that undone; now the intent is
-- written first and the timers finish what a crash cut (Cancellation.finish_releases).

-- Set just before the Redis transition that may release the order; cleared once its
-- coins are back and its bills closed (or the order was found not released).
ALTER TABLE checkout_orders ADD COLUMN release_started_at timestamptz;
-- The timers' sweep reads only the few rows in flight, whatever the number of orders.
CREATE INDEX checkout_orders_release_started ON checkout_orders (release_started_at)
    WHERE release_started_at IS NOT NULL;

-- Deliveries the deliverer gave up, for the operator's list and the gauge
-- (chain/redeliver.py): read without scanning every delivery ever made.
CREATE INDEX deliveries_given_up ON deliveries (updated_at) WHERE status = 'failed';
