"""Interfaces the services need; storage, cache and bus implement them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from socius.domain.sessions import RefreshSpend, Session, SpendOutcome
from socius.domain.signing_keys import SigningKeyRecord
from socius.domain.users import User

__all__ = [
    "Cache",
    "Clock",
    "RefreshSpend",
    "SessionRepository",
    "SigningKeyRecord",
    "SigningKeyRepository",
    "SpendOutcome",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
]

Clock = Callable[[], datetime]


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert; raises Conflict(username_taken / email_taken) on a duplicate."""

    async def get(self, user_id: int) -> User | None: ...

    async def get_many(self, user_ids: list[int]) -> list[User]: ...

    async def get_by_username(self, username: str) -> User | None: ...

    async def get_by_login(self, login: str) -> User | None:
        """By username or by email (both already normalized)."""

    async def update(self, user_id: int, changes: Mapping[str, Any]) -> User | None:
        """Apply column changes; raises Conflict on a duplicate email."""

    async def delete(self, user_id: int) -> bool:
        """Erase the user and every row that references them."""

    async def search(self, query: str, *, limit: int, offset: int) -> list[User]: ...

    async def list_page(self, *, limit: int, after_id: int | None) -> list[User]: ...


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...

    async def get(self, session_id: int) -> Session | None: ...

    async def list_for_user(self, user_id: int) -> list[Session]:
        """Live sessions, newest first."""

    async def touch(self, session_id: int, when: datetime) -> None: ...

    async def revoke(self, session_id: int, when: datetime) -> bool: ...

    async def revoke_all(
        self, user_id: int, when: datetime, *, except_id: int | None = None
    ) -> list[int]:
        """Revoke every live session of a user (but one); the ids revoked."""

    async def add_refresh_token(
        self, token_hash: bytes, *, session_id: int, user_id: int, when: datetime
    ) -> None: ...

    async def spend_refresh_token(self, token_hash: bytes, when: datetime) -> RefreshSpend:
        """Mark a refresh token spent; exactly one concurrent caller gets OK."""

    async def record_revocations(self, session_ids: list[int], until: datetime) -> None:
        """Remember revoked sessions until their last access token has expired."""

    async def is_revoked(self, session_id: int, now: datetime) -> bool: ...

    async def live_revocations(self, now: datetime) -> list[tuple[int, datetime]]: ...

    async def purge(self, before: datetime) -> int:
        """Delete sessions that ended before ``before``; how many."""


class SigningKeyRepository(Protocol):
    async def add(self, record: SigningKeyRecord) -> None: ...

    async def list_all(self) -> list[SigningKeyRecord]:
        """Every key, newest first."""

    async def retire_all_except(self, kid: str, when: datetime) -> None: ...

    async def delete_retired_before(self, when: datetime) -> int: ...


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless ``commit`` is called."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def signing_keys(self) -> SigningKeyRepository: ...

    async def commit(self) -> None: ...

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` once the transaction has committed (never if it rolls back)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, replica: bool = False) -> UnitOfWork:
        """A unit of work; ``replica=True`` allows a lag-tolerant read replica."""


class Cache(Protocol):
    """A small key-value store with expiry: in-process or Redis."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one; the window's expiry is set on the first increment."""

    async def ttl(self, key: str) -> float:
        """Seconds until ``key`` expires, 0 when it does not exist."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
