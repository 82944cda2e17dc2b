-- Wallets (payments/wallet.py): a balance per buyer and currency, a ledger row per move.

-- name: ensure_wallet
INSERT INTO wallets (user_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: add_to_wallet
-- Returns no row when a debit ($3 < 0) would overdraw the wallet.
UPDATE wallets SET balance_cents = balance_cents + $3, updated_at = now()
 WHERE user_id = $1 AND currency = $2 AND balance_cents + $3 >= 0
RETURNING balance_cents;

-- name: insert_wallet_entry
INSERT INTO wallet_entries (user_id, currency, amount_cents, balance_after_cents, kind,
                            payment_id, refund_id, reason, actor, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING entry_id;

-- name: wallet_balance
SELECT balance_cents FROM wallets WHERE user_id = $1 AND currency = $2;

-- name: wallet_entries
SELECT * FROM wallet_entries WHERE user_id = $1 AND currency = $2
 ORDER BY entry_id DESC
 LIMIT $3;

-- name: wallets_off_ledger
-- Every wallet whose balance is not the sum of its ledger, or is negative (the first
-- 50: examples, so the audit's memory stays flat whatever the number of wallets).
SELECT w.user_id, w.currency, w.balance_cents, COALESCE(SUM(e.amount_cents), 0) AS sum
  FROM wallets w
  LEFT JOIN wallet_entries e ON e.user_id = w.user_id AND e.currency = w.currency
 GROUP BY w.user_id, w.currency, w.balance_cents
HAVING w.balance_cents <> COALESCE(SUM(e.amount_cents), 0) OR w.balance_cents < 0
 LIMIT 50;

-- name: ledger_balances
-- A buyer's balance and coins in each currency they hold either in.
SELECT currency, COALESCE(w.balance_cents, 0) AS balance_cents,
       COALESCE(c.coins_cents, 0) AS coins_cents
  FROM (SELECT currency, balance_cents FROM wallets WHERE user_id = $1) w
  FULL JOIN (SELECT currency, coins_cents FROM coin_wallets WHERE user_id = $1) c
       USING (currency)
 ORDER BY currency;

-- name: ledger_entries
-- A buyer's movements of balance and coins in every currency (or $2), latest first,
-- after the row keyed ($3 created_at, $4 ledger, $5 entry_id) (NULLs: from the latest).
SELECT * FROM (
    SELECT 'balance' AS ledger, entry_id, currency, amount_cents, balance_after_cents, kind,
           reason, actor, payment_id, refund_id, NULL::text AS checkout_id,
           NULL::text AS order_id, idempotency_key, created_at
      FROM wallet_entries
     WHERE user_id = $1 AND ($2::text IS NULL OR currency = $2)
    UNION ALL
    SELECT 'coins', entry_id, currency, amount_cents, balance_after_cents, kind,
           reason, actor, NULL, NULL, checkout_id, order_id, idempotency_key, created_at
      FROM coin_entries
     WHERE user_id = $1 AND ($2::text IS NULL OR currency = $2)
) e
 WHERE $3::timestamptz IS NULL OR (created_at, ledger, entry_id) < ($3, $4::text, $5::bigint)
 ORDER BY created_at DESC, ledger DESC, entry_id DESC
 LIMIT $6;

-- name: lock_credit_key
-- Orders two credits of one buyer with one Idempotency-Key (either ledger) until commit.
SELECT pg_advisory_xact_lock(hashtextextended('credit:' || $1 || E'\n' || $2, 0));

-- name: credit_by_key
-- The credit an Idempotency-Key was first used for, in either ledger (a replay must
-- repeat it exactly, kind included).
SELECT 'balance' AS kind, amount_cents, currency, reason FROM wallet_entries
 WHERE user_id = $1 AND idempotency_key = $2 AND kind = 'credit'
UNION ALL
SELECT 'coins', amount_cents, currency, reason FROM coin_entries
 WHERE user_id = $1 AND idempotency_key = $2 AND kind = 'credit';
