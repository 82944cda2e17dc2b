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
INSERT INTO checkouts (checkout_id, user_id, currency, goods_cents, coins_cents,
                       idempotency_key, fingerprint, answer)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb);

-- name: insert_checkout_orders
INSERT INTO checkout_orders (order_id, checkout_id, sale_id, merchant_id, position,
                             price_cents, coins_cents)
SELECT r.order_id, $1, r.sale_id, r.merchant_id, r.position, r.price_cents, r.coins_cents
  FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[])
       AS r(order_id, sale_id, merchant_id, position, price_cents, coins_cents);

-- name: insert_bill
INSERT INTO bills (bill_id, checkout_id, kind, merchant_id, user_id, currency,
                   goods_cents, coins_cents, to_pay_cents)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);
