-- 0008: safe at the edge (#12).

-- Callback replays are told by the provider's notice id (callback_notices) and the
-- signature's timestamp window, no longer by the signature's bytes (payments/callbacks.py).
DROP TABLE callback_signatures;

-- A paid order's cancellation is two steps: the Redis transition (paid -> refund_pending),
-- then the refund row. The intent is written first, so the timers can finish a
-- cancellation a crash cut in two (payments/cancellation.py); cleared with the refund row.
ALTER TABLE payments ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE payments ADD COLUMN cancel_reason text;
CREATE INDEX payments_cancel_intent ON payments (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL;

-- A buyer's order history, newest first, a page at a time (GET /v1/me/orders).
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at, order_id);
