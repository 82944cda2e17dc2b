-- The ops console's live view of a sale (flashsale/api/console.py).

-- name: console_deliveries_waiting
-- A sale's deliveries not yet confirmed, by status (a partial index covers the sale).
SELECT status, count(*) AS n
FROM deliveries
WHERE sale_id = $1 AND status IN ('awaiting_address', 'queued', 'submitted')
GROUP BY status
