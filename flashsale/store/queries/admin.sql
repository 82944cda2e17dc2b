-- Admin listings (store/admin.py): keyset pages from the durable record, newest first.
-- A page asks for one row more than it shows: that row says whether a next page exists.

-- name: admin_sales
-- $1, $2: the cursor (created_at, sale_id of the last row shown), NULL for the first page.
SELECT sale_id, name, status, total, created_at
  FROM sales
 WHERE $1::timestamptz IS NULL OR (created_at, sale_id) < ($1::timestamptz, $2::text)
 ORDER BY created_at DESC, sale_id DESC
 LIMIT $3;

-- name: admin_sale_orders
-- $2 NULL: every status. $3, $4: the cursor (created_at, order_id).
SELECT order_id, sale_id, user_id, serial, serial_kind, status, version, created_at,
       expires_at, updated_at, price_cents, currency, payment_id, reason, draw
  FROM orders
 WHERE sale_id = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::timestamptz IS NULL OR (created_at, order_id) < ($3::timestamptz, $4::text))
 ORDER BY created_at DESC, order_id DESC
 LIMIT $5;

-- name: admin_orders_by_serial
-- Every order that ever held the serial (a released serial is sold again), newest first.
SELECT order_id, sale_id, user_id, serial, serial_kind, status, version, created_at,
       expires_at, updated_at, price_cents, currency, payment_id, reason, draw
  FROM orders
 WHERE sale_id = $1 AND serial = $2
 ORDER BY created_at DESC, order_id DESC
 LIMIT $3;

-- name: buyer_orders
-- A buyer's orders, newest first, ties by order_id (orders_user_created_idx, 0008).
-- $2 NULL: every status; $3 NULL: every sale; $4, $5: the cursor (created_at, order_id).
SELECT order_id, sale_id, user_id, serial, serial_kind, status, version, created_at,
       expires_at, updated_at, price_cents, currency, payment_id, reason, draw
  FROM orders
 WHERE user_id = $1
   AND ($2::text IS NULL OR status = $2)
   AND ($3::text IS NULL OR sale_id = $3)
   AND ($4::timestamptz IS NULL OR (created_at, order_id) < ($4::timestamptz, $5::text))
 ORDER BY created_at DESC, order_id DESC
 LIMIT $6;
