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
