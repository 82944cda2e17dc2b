-- Checkouts (orders/checkout.py): the parent order of a cart, its orders and bills.

-- name: checkout_lock
-- Serialises the checkouts of one buyer's Idempotency-Key (a session lock: a crash frees it).
SELECT pg_advisory_lock(hashtextextended($1, 7));

-- name: checkout_unlock
SELECT pg_advisory_unlock(hashtextextended($1, 7));

-- name: checkout_by_key
SELECT checkout_id, fingerprint, answer FROM checkouts
 WHERE user_id = $1 AND idempotency_key = $2;

-- name: insert_checkout
-- The checkout, its orders (their merchant and coins) and its bills in one statement
-- (the foreign keys are checked at its end).
WITH checkout AS (
    INSERT INTO checkouts (checkout_id, user_id, currency, goods_cents, coins_cents,
                           idempotency_key, fingerprint, answer)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
), orders AS (
    INSERT INTO checkout_orders (order_id, checkout_id, sale_id, merchant_id, position,
                                 price_cents, coins_cents)
    SELECT r.order_id, $1, r.sale_id, r.merchant_id, r.position - 1, r.price_cents,
           r.coins_cents
      FROM unnest($9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[])
           WITH ORDINALITY AS r(order_id, sale_id, merchant_id, price_cents, coins_cents,
                                position)
)
INSERT INTO bills (bill_id, checkout_id, kind, merchant_id, user_id, currency,
                   goods_cents, coins_cents, to_pay_cents)
SELECT b.bill_id, $1, b.kind, b.merchant_id, $2, $3, b.goods_cents, b.coins_cents,
       b.to_pay_cents
  FROM unnest($14::text[], $15::text[], $16::text[], $17::bigint[], $18::bigint[],
              $19::bigint[]) AS b(bill_id, kind, merchant_id, goods_cents, coins_cents,
                                  to_pay_cents);
