-- Queries of the cluster bench (bench/cluster.py), run on its scratch database only.

-- name: bench_orders_stored
SELECT count(*) FROM orders;

-- name: bench_order_lags
-- Per order, how long after the purchase its write-behind transaction began (ms).
SELECT order_id, extract(epoch FROM persisted_at - created_at)::float8 * 1000 AS lag_ms
FROM orders;
