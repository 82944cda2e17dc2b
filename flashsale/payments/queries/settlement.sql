-- Settlement (payments/settlement.py): every change is conditional and its returned
-- row is checked, so concurrent callbacks, queries and timers settle a payment once.

-- name: defer_settlement
-- Redis did not answer: the timers settle the payment after $2 seconds.
UPDATE payments SET next_query_at = now() + make_interval(secs => $2)
 WHERE payment_id = $1 AND settlement IS NULL;

-- name: keep_payment
-- A unique index allows one kept payment per order.
UPDATE payments SET settlement = 'kept', settled_at = now(), updated_at = now(),
       next_query_at = NULL
 WHERE payment_id = $1 AND status = 'succeeded' AND settlement IS NULL
RETURNING 1;

-- name: other_open_attempts
-- The order's other provider attempts still open ($2 is the payment it kept).
SELECT * FROM payments
 WHERE order_id = $1 AND payment_id <> $2 AND status = 'pending' AND method = 'provider';

-- name: reverse_balance_payment
UPDATE payments SET status = 'reversed', settled_at = now(), updated_at = now(),
       next_query_at = NULL, last_error = $2
 WHERE payment_id = $1 AND status = 'succeeded' AND settlement IS NULL
RETURNING *;

-- name: settle_as_refund
UPDATE payments SET settlement = 'refund', settled_at = now(), updated_at = now(),
       next_query_at = NULL
 WHERE payment_id = $1 AND status = 'succeeded' AND settlement IS NULL
RETURNING *;

-- name: insert_refund_request
-- Once per payment: a replay of the same settlement or cancellation adds nothing.
INSERT INTO refunds (refund_id, payment_id, order_id, sale_id, user_id, method,
                     amount_cents, currency, reason, detail, cancels_order)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (payment_id) DO NOTHING;

-- name: close_payment
UPDATE payments SET status = 'closed', updated_at = now(), next_query_at = NULL
 WHERE payment_id = $1 AND status = 'pending';

-- name: succeed_payment
-- The money was taken, whatever we thought of the attempt (closed and failed included);
-- the timers settle it after $5 seconds if this flow does not.
UPDATE payments
   SET status = 'succeeded', captured_cents = $2, succeeded_at = now(),
       provider_paid_at = $3, provider_trade_no = COALESCE(provider_trade_no, $4),
       updated_at = now(), next_query_at = now() + make_interval(secs => $5),
       confirmed_via = $6
 WHERE payment_id = $1 AND status IN ('pending', 'closed', 'failed')
RETURNING *;

-- name: reschedule_query
-- The next active query in $2 seconds; $3, when given, is why this one got no answer.
UPDATE payments SET next_query_at = now() + make_interval(secs => $2),
       last_error = COALESCE($3, last_error)
 WHERE payment_id = $1 AND status = 'pending';

-- name: fail_open_attempt
-- The provider refused the trade or does not know it: the attempt is over.
UPDATE payments SET status = 'failed', last_error = $2, next_query_at = NULL
 WHERE payment_id = $1 AND status = 'pending';

-- name: fail_unknown_trade
-- Closing found no trade at the provider: nothing was ever payable.
UPDATE payments SET status = 'failed', next_query_at = NULL
 WHERE payment_id = $1 AND status = 'pending';

-- name: set_recovered_trade
UPDATE payments SET provider_trade_no = $2, pay_url = $3
 WHERE payment_id = $1
RETURNING *;
