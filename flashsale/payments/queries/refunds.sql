-- Refund review (payments/refunds.py): one decision per refund, executed once.

-- name: list_refunds
-- $1 NULL lists every status.
SELECT * FROM refunds WHERE ($1::text IS NULL OR status = $1)
 ORDER BY created_at, refund_id
 LIMIT $2;

-- name: refund_by_id
SELECT * FROM refunds WHERE refund_id = $1;

-- name: decide_refund
-- Only a pending refund takes a decision; an approval is leased for $5 seconds while
-- it executes, so the timers retry it only if this execution dies.
UPDATE refunds SET status = $2, decided_at = now(), decided_by = $3, decision_note = $4,
       next_attempt_at = now() + make_interval(secs => $5)
 WHERE refund_id = $1 AND status = 'pending'
RETURNING *;

-- name: refund_to_execute
-- The refund with the provider trade its money goes back through.
-- A bill's share (flashsale/orders) goes back through the bill's trade.
SELECT r.*, p.provider, coalesce(p.provider_trade_no, bill.provider_trade_no) AS provider_trade_no
  FROM refunds r JOIN payments p USING (payment_id)
  LEFT JOIN payments bill ON bill.payment_id = p.parent_payment_id
 WHERE r.refund_id = $1;

-- name: refund_provider
-- The provider a refund's money goes back through (NULL: the wallet).
SELECT p.provider FROM refunds r JOIN payments p USING (payment_id) WHERE r.refund_id = $1;

-- name: refund_refused
-- The provider refused the refund: no retry, an operator looks at it.
UPDATE refunds SET last_error = $2, next_attempt_at = NULL, attempts = attempts + 1
 WHERE refund_id = $1;

-- name: mark_refunded
-- Done: an earlier try's error (provider unreachable) no longer describes the refund.
UPDATE refunds SET status = 'refunded', executed_at = now(), next_attempt_at = NULL,
       attempts = attempts + 1, last_error = NULL
 WHERE refund_id = $1 AND status = 'approved'
RETURNING *;

-- name: retry_refund_later
UPDATE refunds SET attempts = attempts + 1, last_error = $2,
       next_attempt_at = now() + make_interval(secs => $3)
 WHERE refund_id = $1;

-- name: mark_order_settled
UPDATE refunds SET order_settled = true WHERE refund_id = $1;

-- name: claim_due_refunds
-- Approved refunds due for another try, leased for $2 seconds to this process.
WITH due AS (
    SELECT refund_id FROM refunds
     WHERE status = 'approved' AND next_attempt_at <= now()
     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE refunds r SET next_attempt_at = now() + make_interval(secs => $2)
  FROM due WHERE r.refund_id = due.refund_id
RETURNING r.refund_id;

-- name: refunds_with_unsettled_order
-- Decided refunds of cancelled paid orders whose Redis transition is still to be made.
SELECT * FROM refunds
 WHERE cancels_order AND NOT order_settled AND status IN ('rejected', 'refunded')
 LIMIT $1;
