"""How domain objects look on the wire: msgspec Structs and the functions that fill them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from socius.domain.sessions import Session
from socius.domain.users import User
from socius.services.auth import IssuedTokens
from socius.services.mfa import MfaChallenge
from socius.services.profiles import Profile

__all__ = [
    "AuthOut",
    "MfaRequiredOut",
    "Page",
    "PrivateUserOut",
    "PublicUserOut",
    "SessionOut",
    "SessionsOut",
    "VerificationRequiredOut",
    "auth_out",
    "login_out",
    "private_user_out",
    "public_user_out",
    "session_out",
]

T = TypeVar("T")


class PublicUserOut(msgspec.Struct, kw_only=True):
    """What anyone signed in may see of a user."""

    id: str
    username: str
    display_name: str
    bio: str
    avatar_url: str | None
    is_private: bool
    friends_count: int
    followers_count: int
    following_count: int
    created_at: datetime


class PrivateUserOut(PublicUserOut, kw_only=True):
    """The caller's own profile: the public one plus private fields."""

    email: str | None
    email_verified: bool
    dm_policy: str
    settings: dict[str, Any]
    updated_at: datetime
    is_admin: bool


class AuthOut(msgspec.Struct, kw_only=True):
    """A fresh token pair and the account it belongs to."""

    user: PrivateUserOut
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (a scheme name, not a secret)


class MfaRequiredOut(msgspec.Struct, kw_only=True):
    """The password was right and the account has a second factor: answer the challenge
    with POST /v1/auth/login/mfa within ``expires_in`` seconds."""

    mfa_required: bool
    mfa_token: str
    expires_in: int


class VerificationRequiredOut(msgspec.Struct, kw_only=True):
    """The account was created; it may sign in once its email is verified (the link has
    been mailed)."""

    user: PrivateUserOut
    email_verification_required: bool


class SessionOut(msgspec.Struct, kw_only=True):
    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str
    ip: str
    current: bool


class SessionsOut(msgspec.Struct, kw_only=True):
    items: list[SessionOut]


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[T]
    next_cursor: str | None


def public_user_out(p: Profile) -> PublicUserOut:
    return PublicUserOut(
        id=str(p.id),
        username=p.username,
        display_name=p.display_name,
        bio=p.bio,
        avatar_url=p.avatar_url,
        is_private=p.is_private,
        friends_count=p.friends_count,
        followers_count=p.followers_count,
        following_count=p.following_count,
        created_at=p.created_at,
    )


def private_user_out(user: User, profile: Profile | None = None) -> PrivateUserOut:
    p = profile or Profile(
        user.id,
        user.username,
        user.display_name,
        user.bio,
        user.avatar_url,
        user.is_private,
        user.created_at,
    )
    return PrivateUserOut(
        id=str(user.id),
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        avatar_url=user.avatar_url,
        is_private=user.is_private,
        friends_count=p.friends_count,
        followers_count=p.followers_count,
        following_count=p.following_count,
        created_at=user.created_at,
        email=user.email,
        email_verified=user.email_verified,
        dm_policy=user.dm_policy.value,
        settings=user.settings,
        updated_at=user.updated_at,
        is_admin=user.is_admin,
    )


def auth_out(issued: IssuedTokens) -> AuthOut:
    return AuthOut(
        user=private_user_out(issued.user, issued.profile),
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


def login_out(result: IssuedTokens | MfaChallenge) -> AuthOut | MfaRequiredOut:
    if isinstance(result, MfaChallenge):
        return MfaRequiredOut(
            mfa_required=True, mfa_token=result.mfa_token, expires_in=result.expires_in
        )
    return auth_out(result)


def session_out(session: Session, current: bool) -> SessionOut:
    return SessionOut(
        id=str(session.id),
        created_at=session.created_at,
        last_used_at=session.last_used_at,
        user_agent=session.user_agent,
        ip=session.ip,
        current=current,
    )
