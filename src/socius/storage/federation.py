"""The repositories of password-less sign-in: provider identities, passkeys, and the
single-use challenges of their ceremonies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from socius.domain.errors import Conflict
from socius.domain.federation import AuthChallenge, ChallengePurpose, FederatedIdentity, Passkey
from socius.storage.tables import auth_challenges, federated_identities, passkeys

__all__ = ["SqlAuthChallengeRepository", "SqlIdentityRepository", "SqlPasskeyRepository"]


def _to_challenge(row: Row[Any]) -> AuthChallenge:
    return AuthChallenge(
        token_hash=bytes(row.token_hash),
        purpose=ChallengePurpose(row.purpose),
        user_id=row.user_id,
        data=dict(row.data),
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class SqlAuthChallengeRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, challenge: AuthChallenge) -> None:
        await self._conn.execute(
            insert(auth_challenges).values(
                token_hash=challenge.token_hash,
                purpose=challenge.purpose.value,
                user_id=challenge.user_id,
                data=challenge.data,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                used_at=challenge.used_at,
            )
        )

    async def get(self, token_hash: bytes) -> AuthChallenge | None:
        row = (
            await self._conn.execute(
                select(auth_challenges).where(auth_challenges.c.token_hash == token_hash)
            )
        ).first()
        return _to_challenge(row) if row else None

    async def spend(
        self, token_hash: bytes, purposes: tuple[ChallengePurpose, ...], when: datetime
    ) -> AuthChallenge | None:
        c = auth_challenges.c
        row = (
            await self._conn.execute(
                update(auth_challenges)
                .where(
                    c.token_hash == token_hash,
                    c.purpose.in_([p.value for p in purposes]),
                    c.used_at.is_(None),
                    c.expires_at > when,
                )
                .values(used_at=when)
                .returning(*auth_challenges.c)
            )
        ).first()
        return _to_challenge(row) if row else None

    async def purge(self, before: datetime) -> int:
        result = await self._conn.execute(
            delete(auth_challenges).where(auth_challenges.c.expires_at < before)
        )
        return int(result.rowcount or 0)


def _to_identity(row: Row[Any]) -> FederatedIdentity:
    return FederatedIdentity(
        provider=row.provider,
        subject=row.subject,
        user_id=row.user_id,
        email=row.email,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class SqlIdentityRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, provider: str, subject: str) -> FederatedIdentity | None:
        c = federated_identities.c
        row = (
            await self._conn.execute(
                select(federated_identities).where(c.provider == provider, c.subject == subject)
            )
        ).first()
        return _to_identity(row) if row else None

    async def for_user(self, user_id: int) -> list[FederatedIdentity]:
        c = federated_identities.c
        rows = await self._conn.execute(
            select(federated_identities).where(c.user_id == user_id).order_by(c.provider, c.subject)
        )
        return [_to_identity(r) for r in rows]

    async def add(self, identity: FederatedIdentity) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(federated_identities).values(
                        provider=identity.provider,
                        subject=identity.subject,
                        user_id=identity.user_id,
                        email=identity.email,
                        created_at=identity.created_at,
                        last_used_at=identity.last_used_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(
                "this identity is linked to an account already", code="identity_already_linked"
            ) from exc

    async def touch(self, provider: str, subject: str, when: datetime, email: str | None) -> None:
        c = federated_identities.c
        await self._conn.execute(
            update(federated_identities)
            .where(c.provider == provider, c.subject == subject)
            .values(last_used_at=when, email=email)
        )

    async def delete(self, user_id: int, provider: str, subject: str) -> bool:
        c = federated_identities.c
        result = await self._conn.execute(
            delete(federated_identities).where(
                c.user_id == user_id, c.provider == provider, c.subject == subject
            )
        )
        return bool(result.rowcount)

    async def count(self, user_id: int) -> int:
        c = federated_identities.c
        found = await self._conn.scalar(
            select(func.count()).select_from(federated_identities).where(c.user_id == user_id)
        )
        return int(found or 0)


def _to_passkey(row: Row[Any]) -> Passkey:
    return Passkey(
        id=row.id,
        user_id=row.user_id,
        credential_id=bytes(row.credential_id),
        public_key=bytes(row.public_key),
        sign_count=row.sign_count,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        transports=list(row.transports or []),
    )


class SqlPasskeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, passkey: Passkey) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(passkeys).values(
                        id=passkey.id,
                        user_id=passkey.user_id,
                        credential_id=passkey.credential_id,
                        public_key=passkey.public_key,
                        sign_count=passkey.sign_count,
                        name=passkey.name,
                        transports=passkey.transports,
                        created_at=passkey.created_at,
                        last_used_at=passkey.last_used_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(
                "this passkey is registered already", code="passkey_already_registered"
            ) from exc

    async def by_credential(self, credential_id: bytes) -> Passkey | None:
        row = (
            await self._conn.execute(
                select(passkeys).where(passkeys.c.credential_id == credential_id)
            )
        ).first()
        return _to_passkey(row) if row else None

    async def get(self, user_id: int, passkey_id: int) -> Passkey | None:
        c = passkeys.c
        row = (
            await self._conn.execute(
                select(passkeys).where(c.id == passkey_id, c.user_id == user_id)
            )
        ).first()
        return _to_passkey(row) if row else None

    async def for_user(self, user_id: int) -> list[Passkey]:
        rows = await self._conn.execute(
            select(passkeys).where(passkeys.c.user_id == user_id).order_by(passkeys.c.id)
        )
        return [_to_passkey(r) for r in rows]

    async def use(self, passkey_id: int, *, old_count: int, new_count: int, when: datetime) -> bool:
        """Record a sign-in: the new counter, if the stored one is still ``old_count``
        (of two concurrent uses of one signature, one wins)."""
        c = passkeys.c
        result = await self._conn.execute(
            update(passkeys)
            .where(c.id == passkey_id, c.sign_count == old_count)
            .values(sign_count=new_count, last_used_at=when)
        )
        return bool(result.rowcount)

    async def rename(self, user_id: int, passkey_id: int, name: str) -> bool:
        c = passkeys.c
        result = await self._conn.execute(
            update(passkeys).where(c.id == passkey_id, c.user_id == user_id).values(name=name)
        )
        return bool(result.rowcount)

    async def delete(self, user_id: int, passkey_id: int) -> bool:
        c = passkeys.c
        result = await self._conn.execute(
            delete(passkeys).where(c.id == passkey_id, c.user_id == user_id)
        )
        return bool(result.rowcount)

    async def count(self, user_id: int) -> int:
        found = await self._conn.scalar(
            select(func.count()).select_from(passkeys).where(passkeys.c.user_id == user_id)
        )
        return int(found or 0)
