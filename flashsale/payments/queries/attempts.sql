-- Starting a payment (payments/attempts.py): a provider attempt or a balance debit.

-- name: insert_provider_attempt
-- The first active query comes after the provider's usual callback time ($8 seconds).
INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, provider,
                      status, amount_cents, currency, next_query_at)
VALUES ($1, $2, $3, $4, 'provider', $5, 'pending', $6, $7,
        now() + make_interval(secs => $8))
RETURNING *;

-- name: fail_refused_attempt
-- The provider refused the trade (or answered nonsense): the attempt is over.
UPDATE payments SET status = 'failed', last_error = $2, updated_at = now(), next_query_at = NULL
 WHERE payment_id = $1 AND status = 'pending';

-- name: set_attempt_trade
UPDATE payments SET provider_trade_no = $2, pay_url = $3, updated_at = now()
 WHERE payment_id = $1
RETURNING *;

-- name: insert_balance_payment
-- Succeeded at once; the timers settle it after $7 seconds if this flow does not.
INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, status,
                      amount_cents, currency, captured_cents, succeeded_at,
                      next_query_at, confirmed_via)
VALUES ($1, $2, $3, $4, 'balance', 'succeeded', $5, $6, $5, now(),
        now() + make_interval(secs => $7), 'balance')
RETURNING *;

-- name: order_in_checkout
-- An order of a checkout (flashsale/orders) is paid through its bill, never alone.
SELECT EXISTS (SELECT 1 FROM checkout_orders WHERE order_id = $1);
