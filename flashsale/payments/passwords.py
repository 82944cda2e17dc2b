"""Payment passwords: argon2id hashes, a bounded number of attempts, then a lock.

A buyer's attempts are checked one at a time (the password row is locked
while its hash is compared), so concurrent guesses cannot test more than
``max_attempts`` passwords per lock window. A correct password resets the
count; the wrong attempt that reaches the limit locks the password for
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
from flashsale.payments.models import PasswordAction, PasswordState, row_to
from flashsale.payments.queries import q

TRAIL_SHOWN = 20


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    max_attempts: int = 5
    lock_s: float = 900.0
    # argon2id, RFC 9106 "second recommended" profile (64 MiB, 3 passes)
    time_cost: int = 3
    memory_cost_kib: int = 65_536
    parallelism: int = 4


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
        row = await self.pool.fetchval(q("password_is_set"), user_id)
        return row is not None

    async def verify(self, user_id: str, password: str) -> None:
        """Return when the password is right; raise wrong, locked or not set otherwise.

        The buyer's row stays locked (FOR UPDATE) while the hash is checked, so one
        buyer's attempts are checked one after another: concurrent guesses cannot
        test more passwords than the limit, and concurrent right ones never count
        against it.
        """
        p = self.policy
        outcome: str
        attempts = 0
        locked_until = None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("password_for_check"), user_id)
            if row is None:
                raise errors.PaymentPasswordNotSet("set a payment password first")
            if row["locked"]:
                outcome, locked_until = "locked", row["locked_until"]
            elif await self._matches(row["password_hash"], password):
                outcome = "ok"
                if row["failed_attempts"] or row["locked_until"] is not None:
                    await conn.execute(q("reset_password_attempts"), user_id)
            else:
                # a lock that ran out starts a fresh count
                attempts = 1 if row["locked_until"] is not None else row["failed_attempts"] + 1
                if attempts >= p.max_attempts:
                    outcome = "locked"
                    locked_until = await conn.fetchval(
                        q("lock_password"), user_id, attempts, p.lock_s
                    )
                else:
                    outcome = "wrong"
                    await conn.execute(q("count_wrong_password"), user_id, attempts)
        if outcome == "ok":
            return
        if outcome == "locked":
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
            await self.pool.execute(q("change_password"), user_id, new_hash)
            return
        new_hash = await self.hash(password)
        inserted = await self.pool.fetchval(q("insert_password"), user_id, new_hash)
        if inserted is None:  # set concurrently by another request: now a change
            raise errors.PaymentPasswordWrong("old_password is required to change it")

    # -- the admin desk: every action leaves a row (who, when, why) ------------------

    async def state(self, user_id: str) -> PasswordState:
        row = await self.pool.fetchrow(q("password_state"), user_id)
        actions = [
            row_to(PasswordAction, r)
            for r in await self.pool.fetch(q("password_actions"), user_id, TRAIL_SHOWN)
        ]
        if row is None:
            return PasswordState(user_id=user_id, set=False, actions=actions)
        return PasswordState(
            user_id=user_id,
            set=True,
            locked=row["locked"],
            failed_attempts=row["failed_attempts"],
            locked_until=row["locked_until"],
            updated_at=row["updated_at"],
            actions=actions,
        )

    async def unlock(self, user_id: str, actor: str, reason: str) -> PasswordState:
        """Clear the wrong attempts and the lock (the password stays as it is)."""
        await self._desk(user_id, "unlock", actor, reason, q("reset_password_attempts"))
        return await self.state(user_id)

    async def reset(self, user_id: str, actor: str, reason: str) -> PasswordState:
        """Forget the password: the buyer sets a new one without the old (after the
        operator made sure, out of band, who is asking)."""
        await self._desk(user_id, "reset", actor, reason, q("delete_password"))
        return await self.state(user_id)

    async def _desk(self, user_id: str, action: str, actor: str, reason: str, sql: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(q("lock_password_row"), user_id) is None:
                raise errors.PaymentPasswordNotSet("this buyer has no payment password")
            await conn.execute(sql, user_id)
            await conn.execute(q("record_password_action"), user_id, action, actor, reason)
