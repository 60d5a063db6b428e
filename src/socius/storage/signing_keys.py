"""The signing-keys repository: Ed25519 keys for access tokens, shared by every node."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.signing_keys import SigningKeyRecord
from socius.storage.tables import signing_keys

__all__ = ["SqlSigningKeyRepository"]


class SqlSigningKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, record: SigningKeyRecord) -> None:
        await self._conn.execute(
            insert(signing_keys).values(
                kid=record.kid,
                private_key_pem=record.private_key_pem,
                created_at=record.created_at,
                retired_at=record.retired_at,
            )
        )

    async def list_all(self) -> list[SigningKeyRecord]:
        rows = await self._conn.execute(
            select(signing_keys).order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
        )
        return [
            SigningKeyRecord(row.kid, row.private_key_pem, row.created_at, row.retired_at)
            for row in rows
        ]

    async def retire_all_except(self, kid: str, when: datetime) -> None:
        await self._conn.execute(
            update(signing_keys)
            .where(signing_keys.c.kid != kid, signing_keys.c.retired_at.is_(None))
            .values(retired_at=when)
        )

    async def delete_retired_before(self, when: datetime) -> int:
        result = await self._conn.execute(
            delete(signing_keys).where(signing_keys.c.retired_at < when)
        )
        return int(result.rowcount)
