-- Coins (payments/coins.py): a balance per buyer and currency, a ledger row per movement.

-- name: ensure_coin_wallet
INSERT INTO coin_wallets (user_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: add_coins
-- Returns no row when a spend ($3 < 0) would overdraw the coins.
UPDATE coin_wallets SET coins_cents = coins_cents + $3, updated_at = now()
 WHERE user_id = $1 AND currency = $2 AND coins_cents + $3 >= 0
RETURNING coins_cents;

-- name: insert_coin_entry
INSERT INTO coin_entries (user_id, currency, amount_cents, balance_after_cents, kind,
                          checkout_id, order_id, reason, actor, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING entry_id;

-- name: coin_balance
SELECT coins_cents FROM coin_wallets WHERE user_id = $1 AND currency = $2;

-- name: coins_of_order
-- What an order of a checkout carries in coins, and whose they are.
SELECT o.order_id, o.coins_cents, c.user_id, c.currency, c.checkout_id
  FROM checkout_orders o JOIN checkouts c USING (checkout_id)
 WHERE o.order_id = $1;

-- name: coin_wallets_off_ledger
-- Every coin balance that is not the sum of its ledger, or is negative.
SELECT w.user_id, w.currency, w.coins_cents, COALESCE(SUM(e.amount_cents), 0) AS sum
  FROM coin_wallets w
  LEFT JOIN coin_entries e ON e.user_id = w.user_id AND e.currency = w.currency
 GROUP BY w.user_id, w.currency, w.coins_cents
HAVING w.coins_cents <> COALESCE(SUM(e.amount_cents), 0) OR w.coins_cents < 0;

-- name: coin_entries
SELECT * FROM coin_entries WHERE user_id = $1 AND currency = $2
 ORDER BY entry_id DESC
 LIMIT $3;
