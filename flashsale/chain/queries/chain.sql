-- Delivery on chain (flashsale/chain): addresses, the chain's head, nonces,
-- transactions, contracts, deliveries, alerts. Tables: store/migrations/0005.

-- name: set_address
INSERT INTO chain_addresses (user_id, address) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET address = EXCLUDED.address, updated_at = now();

-- name: get_address
SELECT address FROM chain_addresses WHERE user_id = $1;

-- name: get_head
SELECT genesis_hash, head FROM chain_heads WHERE chain_id = $1;

-- name: put_head
INSERT INTO chain_heads (chain_id, genesis_hash, head) VALUES ($1, $2, $3)
ON CONFLICT (chain_id) DO UPDATE SET head = EXCLUDED.head, seen_at = now();

-- name: lock_nonce
-- the first use of a sender starts at what the chain says ($3)
INSERT INTO chain_nonces (chain_id, sender, next_nonce) VALUES ($1, $2, $3)
ON CONFLICT (chain_id, sender) DO UPDATE SET next_nonce = chain_nonces.next_nonce
RETURNING next_nonce;

-- name: set_nonce
UPDATE chain_nonces SET next_nonce = $3, updated_at = now() WHERE chain_id = $1 AND sender = $2;

-- name: insert_tx
INSERT INTO chain_txs (chain_id, sender, nonce, purpose, sale_id, order_id, status, tx_hash,
                       raw, hashes, max_fee, priority_fee)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, ARRAY[$7], $9, $10);

-- name: open_txs
SELECT nonce, purpose, sale_id, order_id, status, tx_hash, raw, hashes, max_fee, priority_fee,
       bumps, mined_hash, block_number, block_hash, succeeded, sent_at, signed_at
FROM chain_txs
WHERE chain_id = $1 AND sender = $2 AND status IN ('pending', 'mined')
ORDER BY nonce;

-- name: tx_sent
UPDATE chain_txs SET sent_at = now(), updated_at = now()
WHERE chain_id = $1 AND sender = $2 AND nonce = $3;

-- name: tx_bumped
UPDATE chain_txs
SET tx_hash = $4::text, raw = $5, hashes = array_append(hashes, $4::text), max_fee = $6,
    priority_fee = $7,
    bumps = bumps + 1, sent_at = now(), updated_at = now()
WHERE chain_id = $1 AND sender = $2 AND nonce = $3;

-- name: tx_mined
UPDATE chain_txs
SET status = 'mined', mined_hash = $4, block_number = $5, block_hash = $6, succeeded = $7,
    updated_at = now()
WHERE chain_id = $1 AND sender = $2 AND nonce = $3;

-- name: tx_unmined
UPDATE chain_txs
SET status = 'pending', mined_hash = NULL, block_number = NULL, block_hash = NULL,
    succeeded = NULL, updated_at = now()
WHERE chain_id = $1 AND sender = $2 AND nonce = $3;

-- name: tx_finished
-- confirmed, or lost (the nonce went to a transaction that is not ours)
UPDATE chain_txs SET status = $4, updated_at = now()
WHERE chain_id = $1 AND sender = $2 AND nonce = $3;

-- name: deployed_contract
SELECT chain_id, contract FROM sale_contracts WHERE sale_id = $1 AND status = 'deployed';

-- name: insert_contract
INSERT INTO sale_contracts (sale_id, chain_id, contract, sender, deploy_nonce, status)
VALUES ($1, $2, $3, $4, $5, 'deploying');

-- name: contract_status
UPDATE sale_contracts
SET status = $2, deployed_at = CASE WHEN $2 = 'deployed' THEN now() ELSE deployed_at END
WHERE sale_id = $1;

-- name: sales_without_contract
SELECT DISTINCT d.sale_id, s.name
FROM deliveries d
JOIN sales s ON s.sale_id = d.sale_id
LEFT JOIN sale_contracts c ON c.sale_id = d.sale_id
WHERE d.status = 'queued' AND c.sale_id IS NULL
LIMIT $1;

-- name: paid_without_delivery
-- paid orders that no live delivery covers (none yet, or one cancelled while the
-- order was being refunded and the refund was rejected)
SELECT o.order_id, o.sale_id, o.user_id, o.serial, o.serial_kind::text AS serial_kind,
       d.status AS delivery_status
FROM orders o
LEFT JOIN deliveries d ON d.order_id = o.order_id
WHERE o.status = 'paid' AND (d.order_id IS NULL OR d.status = 'cancelled')
ORDER BY o.persisted_at
LIMIT $1;

-- name: add_deliveries
-- new ones, and cancelled ones revived; a token another live delivery holds is left
-- out (the caller records those as failed)
WITH wanted AS (
    SELECT u.order_id, u.sale_id, u.user_id, u.token_id, a.address
    FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[])
        AS u(order_id, sale_id, user_id, token_id)
    LEFT JOIN chain_addresses a ON a.user_id = u.user_id
)
INSERT INTO deliveries (order_id, sale_id, user_id, token_id, status, address)
SELECT order_id, sale_id, user_id, token_id,
       CASE WHEN address IS NULL THEN 'awaiting_address' ELSE 'queued' END, address
FROM wanted
ON CONFLICT DO NOTHING
RETURNING order_id;

-- name: revive_delivery
-- A delivery in status $2 queued again: cancelled (its order paid again after a rejected
-- refund) or failed (an operator asks for a redelivery, chain/redeliver.py). One that
-- signed transactions keeps attempts >= 1: the deliverer checks the chain before minting.
UPDATE deliveries
SET address = (SELECT a.address FROM chain_addresses a WHERE a.user_id = deliveries.user_id),
    status = CASE WHEN EXISTS (SELECT 1 FROM chain_addresses a WHERE a.user_id = deliveries.user_id)
                  THEN 'queued' ELSE 'awaiting_address' END,
    reason = $3, attempts = LEAST(attempts, 1), updated_at = now()
WHERE order_id = $1 AND status = $2
RETURNING status;

-- name: delivery_status_of
SELECT status FROM deliveries WHERE order_id = $1;

-- name: given_up_deliveries
SELECT order_id, sale_id, user_id, token_id, reason, attempts, updated_at
FROM deliveries WHERE status = 'failed'
ORDER BY updated_at DESC, order_id
LIMIT $1;

-- name: count_given_up
SELECT count(*) FROM deliveries WHERE status = 'failed';

-- name: add_failed_delivery
INSERT INTO deliveries (order_id, sale_id, user_id, token_id, status, reason)
VALUES ($1, $2, $3, $4, 'failed', $5)
ON CONFLICT (order_id) DO UPDATE SET status = 'failed', reason = EXCLUDED.reason,
    updated_at = now();

-- name: promote_awaiting
UPDATE deliveries d SET status = 'queued', address = a.address, updated_at = now()
FROM chain_addresses a
WHERE d.status = 'awaiting_address' AND a.user_id = d.user_id;

-- name: cancel_unpaid
-- orders cancelled for a refund (or gone) before their mint was signed; an order
-- already delivering keeps its delivery
UPDATE deliveries d SET status = 'cancelled', reason = 'order is ' || o.status,
    updated_at = now()
FROM orders o
WHERE d.status IN ('awaiting_address', 'queued') AND o.order_id = d.order_id
  AND o.status IN ('refund_pending', 'refunded', 'cancelled', 'expired')
RETURNING d.order_id;

-- name: queued_deliveries
SELECT d.order_id, d.sale_id, d.token_id, d.address, d.attempts, c.contract
FROM deliveries d
JOIN sale_contracts c ON c.sale_id = d.sale_id
WHERE d.status = 'queued' AND c.status = 'deployed' AND c.chain_id = $1
ORDER BY d.created_at
LIMIT $2;

-- name: delivery_submitted
UPDATE deliveries
SET status = 'submitted', chain_id = $2, sender = $3, nonce = $4, attempts = attempts + 1,
    updated_at = now()
WHERE order_id = $1;

-- name: delivery_status
-- queued again (reason), confirmed, failed (reason) or cancelled (reason)
UPDATE deliveries
SET status = $2, reason = $3, updated_at = now(),
    confirmed_at = CASE WHEN $2 = 'confirmed' THEN now() ELSE confirmed_at END
WHERE order_id = $1;

-- name: delivery_view
SELECT d.status, d.address, d.token_id, d.reason, t.tx_hash, t.mined_hash, t.block_number,
       h.head
FROM deliveries d
LEFT JOIN chain_txs t ON t.chain_id = d.chain_id AND t.sender = d.sender AND t.nonce = d.nonce
LEFT JOIN chain_heads h ON h.chain_id = d.chain_id
WHERE d.order_id = $1;

-- name: insert_alert
INSERT INTO delivery_alerts (class, severity, order_id, tx_hash, detail)
VALUES ($1, $2, $3, $4, $5::jsonb);

-- name: set_head
UPDATE chain_heads SET head = $2, seen_at = now() WHERE chain_id = $1;

-- name: delivery_to_retry
SELECT d.address, d.token_id, d.attempts, c.contract
FROM deliveries d JOIN sale_contracts c ON c.sale_id = d.sale_id
WHERE d.order_id = $1;

-- name: forget_deploying_contract
DELETE FROM sale_contracts WHERE sale_id = $1 AND status = 'deploying';
