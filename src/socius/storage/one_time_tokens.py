"""The one-time tokens repository (verification and reset links, a login's second step)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.one_time_tokens import OneTimeToken, TokenPurpose
from socius.storage.tables import one_time_tokens as t

__all__ = ["SqlOneTimeTokenRepository"]


def _to_token(row: Row[Any]) -> OneTimeToken:
    return OneTimeToken(
        token_hash=bytes(row.token_hash),
        purpose=TokenPurpose(row.purpose),
        user_id=row.user_id,
        email=row.email,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        attempts=row.attempts,
    )


class SqlOneTimeTokenRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, token: OneTimeToken) -> None:
        await self._conn.execute(
            insert(t).values(
                token_hash=token.token_hash,
                purpose=token.purpose.value,
                user_id=token.user_id,
                email=token.email,
                created_at=token.created_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
                attempts=token.attempts,
            )
        )

    async def get(self, token_hash: bytes, purpose: TokenPurpose) -> OneTimeToken | None:
        row = (
            await self._conn.execute(
                select(t).where(t.c.token_hash == token_hash, t.c.purpose == purpose.value)
            )
        ).first()
        return _to_token(row) if row else None

    async def spend(self, token_hash: bytes, purpose: TokenPurpose, when: datetime) -> bool:
        result = await self._conn.execute(
            update(t)
            .where(
                t.c.token_hash == token_hash,
                t.c.purpose == purpose.value,
                t.c.used_at.is_(None),
                t.c.expires_at > when,
            )
            .values(used_at=when)
        )
        return bool(result.rowcount)

    async def count_failure(self, token_hash: bytes, *, max_attempts: int, when: datetime) -> int:
        attempts = t.c.attempts + 1
        row = (
            await self._conn.execute(
                update(t)
                .where(t.c.token_hash == token_hash)
                .values(
                    attempts=attempts,
                    used_at=case(
                        (t.c.used_at.is_not(None), t.c.used_at),
                        (attempts >= max_attempts, when),
                        else_=None,
                    ),
                )
                .returning(t.c.attempts)
            )
        ).first()
        return int(row.attempts) if row else max_attempts

    async def delete_for_user(self, user_id: int, purposes: Sequence[TokenPurpose]) -> None:
        await self._conn.execute(
            delete(t).where(t.c.user_id == user_id, t.c.purpose.in_([p.value for p in purposes]))
        )

    async def purge(self, before: datetime) -> int:
        result = await self._conn.execute(delete(t).where(t.c.expires_at < before))
        return int(result.rowcount or 0)
