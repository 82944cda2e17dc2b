"""Payment passwords: argon2id hashes, a bounded number of attempts, then a lock.

An attempt is *reserved* before the hash is checked (one conditional UPDATE
that counts it), so concurrent guesses cannot test more than ``max_attempts``
passwords per lock window however many arrive at once. A correct password
resets the count; the attempt that reaches the limit locks the password for
``lock_s`` seconds. Time is PostgreSQL's ``now()``: one clock for all workers.
Hashing runs in a worker thread: argon2 is memory-hard on purpose and would
otherwise stall the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from flashsale.payments import errors
from flashsale.payments.failures import Failure, report


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    max_attempts: int = 5
    lock_s: float = 900.0
    # argon2id, RFC 9106 "second recommended" profile (64 MiB, 3 passes)
    time_cost: int = 3
    memory_cost_kib: int = 65_536
    parallelism: int = 4


_RESERVE = """
UPDATE payment_passwords
   SET failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= now()
                              THEN 1 ELSE failed_attempts + 1 END,
       locked_until = CASE WHEN locked_until <= now() THEN NULL ELSE locked_until END,
       updated_at = now()
 WHERE user_id = $1
   AND (locked_until IS NULL OR locked_until <= now())
   AND (failed_attempts < $2 OR locked_until <= now())
RETURNING password_hash, failed_attempts
"""


class Passwords:
    def __init__(self, pool: asyncpg.Pool, policy: PasswordPolicy | None = None) -> None:
        self.pool = pool
        self.policy = policy or PasswordPolicy()
        p = self.policy
        self.hasher = PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_cost_kib, parallelism=p.parallelism
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _matches(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    async def is_set(self, user_id: str) -> bool:
        row = await self.pool.fetchval(
            "SELECT 1 FROM payment_passwords WHERE user_id = $1", user_id
        )
        return row is not None

    async def verify(self, user_id: str, password: str) -> None:
        """Return when the password is right; raise wrong, locked or not set otherwise."""
        p = self.policy
        row = await self.pool.fetchrow(_RESERVE, user_id, p.max_attempts)
        if row is None:
            state = await self.pool.fetchrow(
                "SELECT locked_until FROM payment_passwords WHERE user_id = $1", user_id
            )
            if state is None:
                raise errors.PaymentPasswordNotSet("set a payment password first")
            report(Failure.PASSWORD_LOCKED, user_id=user_id)
            raise errors.PaymentPasswordLocked(
                "too many wrong payment passwords; try again later",
                locked_until=state["locked_until"],
            )
        if await self._matches(row["password_hash"], password):
            await self.pool.execute(
                "UPDATE payment_passwords SET failed_attempts = 0, locked_until = NULL,"
                " updated_at = now() WHERE user_id = $1 AND password_hash = $2",
                user_id,
                row["password_hash"],
            )
            return
        attempts = int(row["failed_attempts"])
        if attempts >= p.max_attempts:
            locked_until = await self.pool.fetchval(
                "UPDATE payment_passwords SET locked_until = now() + make_interval(secs => $2),"
                " updated_at = now() WHERE user_id = $1 RETURNING locked_until",
                user_id,
                p.lock_s,
            )
            report(Failure.PASSWORD_LOCKED, user_id=user_id, attempts=attempts)
            raise errors.PaymentPasswordLocked(
                "too many wrong payment passwords; try again later", locked_until=locked_until
            )
        report(Failure.PASSWORD_WRONG, user_id=user_id, attempts=attempts)
        raise errors.PaymentPasswordWrong(
            "wrong payment password", attempts_left=p.max_attempts - attempts
        )

    async def set(self, user_id: str, password: str, old_password: str | None) -> None:
        """First setting needs no old password; a change needs the current one."""
        if await self.is_set(user_id):
            if old_password is None:
                raise errors.PaymentPasswordWrong("old_password is required to change it")
            await self.verify(user_id, old_password)
            new_hash = await self.hash(password)
            await self.pool.execute(
                "UPDATE payment_passwords SET password_hash = $2, failed_attempts = 0,"
                " locked_until = NULL, updated_at = now() WHERE user_id = $1",
                user_id,
                new_hash,
            )
            return
        new_hash = await self.hash(password)
        inserted = await self.pool.fetchval(
            "INSERT INTO payment_passwords (user_id, password_hash) VALUES ($1, $2)"
            " ON CONFLICT (user_id) DO NOTHING RETURNING 1",
            user_id,
            new_hash,
        )
        if inserted is None:  # set concurrently by another request: now a change
            raise errors.PaymentPasswordWrong("old_password is required to change it")
