-- 0006: what the admin listings and the payment-password desk need.

-- Who unlocked or reset a buyer's payment password, when, and why (payments/passwords.py).
CREATE TABLE payment_password_actions (
    action_id  bigserial PRIMARY KEY,
    user_id    text NOT NULL,
    action     text NOT NULL CHECK (action IN ('unlock', 'reset')),
    actor      text NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_password_actions_by_user ON payment_password_actions (user_id, action_id);

-- A sale's orders page by page, newest first (store/admin.py), with or without a status,
-- and every order that ever held a serial. Built in the migration's transaction (not
-- CONCURRENTLY): the write-behind waits for the build (seconds at a million orders).
DROP INDEX orders_sale_status_idx;
CREATE INDEX orders_sale_status_idx ON orders (sale_id, status, created_at, order_id);
CREATE INDEX orders_sale_created_idx ON orders (sale_id, created_at, order_id);
CREATE INDEX orders_sale_serial_idx ON orders (sale_id, serial);
