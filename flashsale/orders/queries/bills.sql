-- Bills (orders/bills.py): the parent bill of a checkout and its merchant bills.

-- name: bill_by_id
-- A bill with its orders in checkout order (a merchant bill: its merchant's only).
SELECT b.*, array(
         SELECT o.order_id FROM checkout_orders o
          WHERE o.checkout_id = b.checkout_id
            AND (b.kind = 'parent' OR o.merchant_id = b.merchant_id)
          ORDER BY o.position) AS order_ids
  FROM bills b WHERE b.bill_id = $1;

-- name: bill_orders
-- The orders a bill pays, with the amount each is to pay.
SELECT o.order_id, o.sale_id, o.price_cents, o.coins_cents,
       o.price_cents - o.coins_cents AS to_pay_cents
  FROM bills b JOIN checkout_orders o ON o.checkout_id = b.checkout_id
 WHERE b.bill_id = $1 AND (b.kind = 'parent' OR o.merchant_id = b.merchant_id)
 ORDER BY o.position;

-- name: lock_checkout_bills
-- Every bill of a checkout, locked in one order: paying the parent and a merchant bill
-- at once take their turns (one wins, the other finds its bill paid or closed).
SELECT bill_id, kind, status FROM bills WHERE checkout_id = $1 ORDER BY bill_id FOR UPDATE;

-- name: mark_bill_paid
UPDATE bills SET status = 'paid', payment_id = $2, updated_at = now()
 WHERE bill_id = $1 AND status = 'open'
RETURNING bill_id;

-- name: parent_paid_pays_merchant_bills
UPDATE bills SET status = 'paid', payment_id = $2, updated_at = now()
 WHERE checkout_id = $1 AND kind = 'merchant' AND status = 'open';

-- name: merchant_paid_closes_parent
UPDATE bills SET status = 'closed', closed_reason = 'paid merchant by merchant',
       updated_at = now()
 WHERE checkout_id = $1 AND kind = 'parent' AND status = 'open';

-- name: bill_status
SELECT status FROM bills WHERE bill_id = $1;

-- name: bill_claim_state
SELECT status, payment_id, checkout_id, kind, user_id, currency FROM bills WHERE bill_id = $1;

-- name: insert_bill_share
-- An order's share of a bill's payment: succeeded with it, settled against the order as
-- any payment is (the timers settle it after $10 seconds if this flow does not).
INSERT INTO payments (payment_id, order_id, sale_id, user_id, method, provider, status,
                      amount_cents, currency, captured_cents, succeeded_at, next_query_at,
                      confirmed_via, parent_payment_id)
VALUES ($1, $2, $3, $4, $5, $6, 'succeeded', $7, $8, $7, now(),
        now() + make_interval(secs => $10), 'bill', $9)
RETURNING *;
