-- 0003_refund_pending_holds_serial: a refund_pending order (a paid order cancelled
-- before delivery, waiting for an operator's decision) still holds its serial and
-- counts toward its buyer's limit in Redis until the refund is approved
-- (refunded: the serial returns to the pool) or rejected (paid again). The last line
-- of defence covers it too.
--
-- Rebuilt in the migration's transaction (not CONCURRENTLY): writes to orders wait
-- for the rebuild (seconds at a million orders); nothing is refused meanwhile.

DROP INDEX orders_live_serial_key;
CREATE UNIQUE INDEX orders_live_serial_key ON orders (sale_id, serial)
    WHERE status IN ('pending_payment', 'paid', 'delivered', 'refund_pending');

DROP INDEX orders_live_buyer_key;
CREATE UNIQUE INDEX orders_live_buyer_key ON orders (sale_id, user_id)
    WHERE one_per_buyer AND status IN ('pending_payment', 'paid', 'delivered', 'refund_pending');
