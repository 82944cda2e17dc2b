-- The timers (payments/timers.py): work is claimed with FOR UPDATE SKIP LOCKED and
-- leased for $2 seconds, so several timer processes never do the same work at once.

-- name: claim_due_queries
-- Pending provider attempts whose callback is overdue.
WITH due AS (
    SELECT payment_id FROM payments
     WHERE status = 'pending' AND method = 'provider' AND next_query_at <= now()
     ORDER BY next_query_at LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE payments p
   SET next_query_at = now() + make_interval(secs => $2),
       query_attempts = p.query_attempts + 1
  FROM due WHERE p.payment_id = due.payment_id
RETURNING p.*;

-- name: claim_due_settlements
-- Succeeded payments whose order confirmation never reached Redis.
WITH due AS (
    SELECT payment_id FROM payments
     WHERE status = 'succeeded' AND settlement IS NULL AND next_query_at <= now()
     ORDER BY next_query_at LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE payments p SET next_query_at = now() + make_interval(secs => $2)
  FROM due WHERE p.payment_id = due.payment_id
RETURNING p.*;
