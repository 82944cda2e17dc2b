-- Payment passwords (payments/passwords.py). Time is PostgreSQL's now(): one clock.

-- name: password_is_set
SELECT 1 FROM payment_passwords WHERE user_id = $1;

-- name: password_for_check
-- Locks the buyer's row: one buyer's attempts are checked one after another.
SELECT password_hash, failed_attempts, locked_until,
       COALESCE(locked_until > now(), false) AS locked
  FROM payment_passwords WHERE user_id = $1
   FOR UPDATE;

-- name: reset_password_attempts
UPDATE payment_passwords SET failed_attempts = 0, locked_until = NULL, updated_at = now()
 WHERE user_id = $1;

-- name: lock_password
-- The wrong attempt that reached the limit: locked for $3 seconds.
UPDATE payment_passwords SET failed_attempts = $2,
       locked_until = now() + make_interval(secs => $3), updated_at = now()
 WHERE user_id = $1
RETURNING locked_until;

-- name: count_wrong_password
UPDATE payment_passwords SET failed_attempts = $2, locked_until = NULL, updated_at = now()
 WHERE user_id = $1;

-- name: change_password
UPDATE payment_passwords SET password_hash = $2, failed_attempts = 0, locked_until = NULL,
       updated_at = now()
 WHERE user_id = $1;

-- name: insert_password
-- Returns no row when another request set it first.
INSERT INTO payment_passwords (user_id, password_hash) VALUES ($1, $2)
ON CONFLICT (user_id) DO NOTHING
RETURNING 1;

-- name: password_state
SELECT failed_attempts, locked_until, COALESCE(locked_until > now(), false) AS locked,
       updated_at
  FROM payment_passwords WHERE user_id = $1;

-- name: password_actions
-- The admin desk's trail for one buyer, latest first.
SELECT action, actor, reason, at FROM payment_password_actions
 WHERE user_id = $1 ORDER BY action_id DESC LIMIT $2;

-- name: lock_password_row
-- The row an admin action changes, locked against a concurrent check or change.
SELECT 1 FROM payment_passwords WHERE user_id = $1 FOR UPDATE;

-- name: delete_password
-- A forgotten password: the buyer sets a new one without the old.
DELETE FROM payment_passwords WHERE user_id = $1;

-- name: record_password_action
INSERT INTO payment_password_actions (user_id, action, actor, reason) VALUES ($1, $2, $3, $4);
