"""The second-factor repository: TOTP factors and recovery codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.mfa import RecoveryCode, TotpFactor
from socius.storage.tables import recovery_codes, totp_factors

__all__ = ["SqlMfaRepository"]


def _to_factor(row: Row[Any]) -> TotpFactor:
    return TotpFactor(
        user_id=row.user_id,
        secret_box=bytes(row.secret_box),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_step=row.last_step,
    )


class SqlMfaRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def factor(self, user_id: int) -> TotpFactor | None:
        row = (
            await self._conn.execute(select(totp_factors).where(totp_factors.c.user_id == user_id))
        ).first()
        return _to_factor(row) if row else None

    async def put_factor(self, factor: TotpFactor) -> None:
        await self._conn.execute(
            delete(totp_factors).where(totp_factors.c.user_id == factor.user_id)
        )
        await self._conn.execute(
            insert(totp_factors).values(
                user_id=factor.user_id,
                secret_box=factor.secret_box,
                created_at=factor.created_at,
                confirmed_at=factor.confirmed_at,
                last_step=factor.last_step,
            )
        )

    async def confirm_factor(self, user_id: int, when: datetime, step: int) -> bool:
        result = await self._conn.execute(
            update(totp_factors)
            .where(totp_factors.c.user_id == user_id, totp_factors.c.confirmed_at.is_(None))
            .values(confirmed_at=when, last_step=step)
        )
        return bool(result.rowcount)

    async def use_step(self, user_id: int, step: int) -> bool:
        result = await self._conn.execute(
            update(totp_factors)
            .where(
                totp_factors.c.user_id == user_id,
                or_(totp_factors.c.last_step.is_(None), totp_factors.c.last_step < step),
            )
            .values(last_step=step)
        )
        return bool(result.rowcount)

    async def delete_factor(self, user_id: int) -> bool:
        await self._conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        result = await self._conn.execute(
            delete(totp_factors).where(totp_factors.c.user_id == user_id)
        )
        return bool(result.rowcount)

    async def replace_recovery_codes(self, user_id: int, codes: Sequence[RecoveryCode]) -> None:
        await self._conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        if codes:
            await self._conn.execute(
                insert(recovery_codes),
                [
                    {
                        "user_id": c.user_id,
                        "code_hash": c.code_hash,
                        "salt": c.salt,
                        "used_at": None,
                    }
                    for c in codes
                ],
            )

    async def unused_recovery_codes(self, user_id: int) -> list[RecoveryCode]:
        rows = await self._conn.execute(
            select(recovery_codes).where(
                recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)
            )
        )
        return [
            RecoveryCode(
                user_id=row.user_id,
                salt=bytes(row.salt),
                code_hash=bytes(row.code_hash),
                used_at=row.used_at,
            )
            for row in rows
        ]

    async def use_recovery_code(self, user_id: int, code_hash: bytes, when: datetime) -> bool:
        result = await self._conn.execute(
            update(recovery_codes)
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == code_hash,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=when)
        )
        return bool(result.rowcount)
