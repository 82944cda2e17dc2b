-- After-sales tickets (orders/aftersales.py) and their evidence, stored by content hash.

-- name: insert_blob
INSERT INTO evidence_blobs (sha256, content_type, bytes, data)
VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING;

-- name: insert_ticket
-- A unique index allows one open ticket per order.
INSERT INTO after_sales_tickets (ticket_id, order_id, sale_id, user_id, reason)
VALUES ($1, $2, $3, $4, $5);

-- name: insert_evidence
INSERT INTO after_sales_evidence (evidence_id, ticket_id, position, sha256)
VALUES ($1, $2, $3, $4);

-- name: ticket_by_id
SELECT * FROM after_sales_tickets WHERE ticket_id = $1;

-- name: evidence_of_tickets
SELECT e.ticket_id, e.evidence_id, b.content_type, b.bytes, b.sha256
  FROM after_sales_evidence e JOIN evidence_blobs b USING (sha256)
 WHERE e.ticket_id = ANY($1::text[])
 ORDER BY e.ticket_id, e.position;

-- name: evidence_file
SELECT b.content_type, b.data FROM after_sales_evidence e JOIN evidence_blobs b USING (sha256)
 WHERE e.ticket_id = $1 AND e.evidence_id = $2;

-- name: list_tickets
SELECT * FROM after_sales_tickets
 WHERE ($1::text IS NULL OR status = $1)
 ORDER BY created_at, ticket_id
 LIMIT $2;

-- name: decide_ticket
-- Decided once: only an open ticket takes a decision.
UPDATE after_sales_tickets SET status = $2, decided_at = now(), decided_by = $3, note = $4
 WHERE ticket_id = $1 AND status = 'open'
RETURNING *;

-- name: set_ticket_refund
UPDATE after_sales_tickets SET refund_id = $2 WHERE ticket_id = $1;

-- name: refund_of_payment
SELECT refund_id FROM refunds WHERE payment_id = $1;

-- name: delivered_at
-- When the order's token was confirmed on chain (flashsale/chain), if it was.
SELECT confirmed_at FROM deliveries WHERE order_id = $1 AND status = 'confirmed';
