-- 0007_delivery_statuses: orders go on after paid: delivering (the mint is being
-- signed and sent), delivered (the token is the buyer's, confirmed on chain) and
-- completed (the buyer confirmed, or the sale's after-sales window passed). All
-- three hold their serial, so the last line of defence covers them too.
--
-- Rebuilt in the migration's transaction (not CONCURRENTLY): writes to orders wait
-- for the rebuild (seconds at a million orders); nothing is refused meanwhile.

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('pending_payment',
    'paid', 'expired', 'cancelled', 'refund_pending', 'refunded', 'delivering', 'delivered',
    'completed'));

DROP INDEX orders_live_serial_key;
CREATE UNIQUE INDEX orders_live_serial_key ON orders (sale_id, serial)
    WHERE status IN ('pending_payment', 'paid', 'delivering', 'delivered', 'completed',
                     'refund_pending');

DROP INDEX orders_live_buyer_key;
CREATE UNIQUE INDEX orders_live_buyer_key ON orders (sale_id, user_id)
    WHERE one_per_buyer AND status IN ('pending_payment', 'paid', 'delivering', 'delivered',
                                       'completed', 'refund_pending');
