"""Interfaces the services need; storage, cache and bus implement them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from socius.domain.attachments import Attachment
from socius.domain.audit import AuditEntry, Via
from socius.domain.conversations import (
    Conversation,
    Member,
    Message,
    Role,
    SendFacts,
    SendTarget,
    ThreadRoot,
    ThreadSummary,
)
from socius.domain.events import Event, LogPage
from socius.domain.federation import AuthChallenge, ChallengePurpose, FederatedIdentity, Passkey
from socius.domain.graph import EdgeRow, EdgeType, ListedUserRow
from socius.domain.graph_writes import PairState, PairWrite
from socius.domain.mail import Mail
from socius.domain.mfa import RecoveryCode, TotpFactor
from socius.domain.notifications import Notification
from socius.domain.one_time_tokens import OneTimeToken, TokenPurpose
from socius.domain.push import Device, NotificationSettings
from socius.domain.reports import Report, ReportAction, ReportedMessage, ReportStatus
from socius.domain.search import SearchHit
from socius.domain.sessions import RefreshSpend, RefreshToken, Session, SpendOutcome
from socius.domain.signing_keys import SigningKeyRecord
from socius.domain.stream import DomainEvent, StreamedEvent
from socius.domain.users import User, UserStatus
from socius.domain.webhooks import Delivery as WebhookDelivery
from socius.domain.webhooks import Webhook

__all__ = [
    "AttachmentRepository",
    "AuditRepository",
    "BlobStore",
    "Bus",
    "Cache",
    "CacheAndBus",
    "Clock",
    "ConversationRepository",
    "DomainEventRepository",
    "EdgeRepository",
    "EventStream",
    "HotReads",
    "Images",
    "LeaseRepository",
    "Mailer",
    "MfaRepository",
    "NotificationRepository",
    "OneTimeTokenRepository",
    "OutboxRepository",
    "PushRepository",
    "PushSender",
    "RefreshRotation",
    "RefreshSpend",
    "ReportRepository",
    "SearchRepository",
    "SessionRepository",
    "SigningKeyRecord",
    "SigningKeyRepository",
    "SpendOutcome",
    "StreamRepository",
    "Subscription",
    "SuggestionListRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UserRepository",
    "WebhookRefused",
    "WebhookRepository",
    "WebhookResponse",
    "WebhookSender",
]

Clock = Callable[[], datetime]


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert; raises Conflict(username_taken / email_taken) on a duplicate."""

    async def get(self, user_id: int) -> User | None: ...

    async def get_many(self, user_ids: list[int]) -> list[User]: ...

    async def get_many_with_counts(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[tuple[User, dict[EdgeType, int]]]:
        """Users with their stored edge counts of ``types`` (0 when none), in one query."""

    async def lock(self, user_ids: list[int], *, exclusive: bool) -> list[User]:
        """Read users and lock their rows (shared or exclusive) until the transaction ends."""

    async def get_by_username(self, username: str) -> User | None: ...

    async def get_by_login(self, login: str) -> User | None:
        """By username or by email (both already normalized)."""

    async def update(self, user_id: int, changes: Mapping[str, Any]) -> User | None:
        """Apply column changes; raises Conflict on a duplicate email."""

    async def update_profile(
        self,
        user_id: int,
        changes: Mapping[str, Any],
        counted: Sequence[EdgeType],
        domain: Sequence[DomainEvent] = (),
        *,
        alone: bool = False,
    ) -> tuple[User, dict[EdgeType, int]] | None:
        """An active user's profile fields changed and ``domain`` stored in one write; the
        new row with its edge counts of ``counted`` (None, nothing written: no such active
        user). Not in ``changed``. ``alone``: the unit of work's only statement (it may
        then commit by itself)."""

    async def delete(self, user_id: int) -> bool:
        """Erase the user and every row that references them."""

    async def search(self, query: str, *, viewer: int, limit: int, offset: int) -> list[User]:
        """Active users matching ``query``, best first, leaving out those blocked either
        way with ``viewer``."""

    async def list_page(self, *, limit: int, after_id: int | None) -> list[User]: ...

    async def admin_page(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        query: str | None = None,
        status: UserStatus | None = None,
        is_admin: bool | None = None,
    ) -> list[User]:
        """Every account (disabled ones too), newest first, narrowed by each filter given:
        ``query`` in the username, email or display name (or the id itself)."""

    async def lock_admins(self) -> list[int]:
        """The active administrators' ids, their rows locked until the transaction ends,
        so that changes to who is an administrator run one at a time."""


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

    async def spend_refresh_token(
        self, token_hash: bytes, when: datetime, *, successor_salt: bytes | None = None
    ) -> RefreshSpend:
        """Mark a refresh token spent, keeping the salt its successor is derived with;
        exactly one concurrent caller gets OK. REUSED says when it was spent, and its salt."""

    async def renew(
        self, session_id: int, user_id: int, token_hash: bytes, when: datetime
    ) -> tuple[Session, User] | None:
        """After a spend: touch the session, store its next refresh token (``token_hash``,
        of ``user_id``) and return the session and the user (None when either is gone), in
        one round trip where the database allows. The caller rolls back unless both are
        usable."""

    async def get_refresh_token(self, token_hash: bytes) -> RefreshToken | None: ...

    async def record_revocations(self, session_ids: list[int], until: datetime) -> None:
        """Remember revoked sessions until their last access token has expired."""

    async def is_revoked(self, session_id: int, now: datetime) -> bool: ...

    async def live_revocations(
        self, now: datetime, *, since: datetime | None = None
    ) -> list[tuple[int, datetime]]:
        """Revocations still in force (made at or after ``since``, by their ``until``)."""

    async def purge(self, before: datetime) -> int:
        """Delete sessions that ended before ``before``; how many."""

    async def last_logins(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        """When each user last logged in, as far as the sessions on record tell (those
        without one are left out)."""


class SigningKeyRepository(Protocol):
    async def add(self, record: SigningKeyRecord) -> None: ...

    async def list_all(self) -> list[SigningKeyRecord]:
        """Every key, newest first."""

    async def retire_all_except(self, kid: str, when: datetime) -> None: ...

    async def delete_retired_before(self, when: datetime) -> int: ...


class EdgeRepository(Protocol):
    """The association store. Every write also writes the inverse edge and the counts."""

    async def lock_pair(self, a: int, b: int) -> None:
        """Serialize writers of the pair {a, b} until the transaction ends."""

    @property
    def checks_pairs(self) -> bool:
        """May a graph write go as ``write_pair_checked`` (decision 0053)?"""

    async def pair_state(self, actor: int, other: int) -> PairState:
        """The pair as a graph write finds it, its users' rows locked (after lock_pair)."""

    async def write_pair(self, change: PairWrite) -> list[Event]:
        """Store one graph write; its log events, numbered (decision 0027)."""

    async def write_pair_checked(
        self, change: PairWrite, states: bytes
    ) -> tuple[PairState, list[Event] | None]:
        """Store ``change`` if the pair, read under its lock, is in ``states`` (a bitmap
        over ``pair_code``); the pair as found, and the stored events (None: nothing)."""

    async def types_between(self, src: int, dst: int) -> frozenset[EdgeType]: ...

    async def types_between_many(
        self, src: int, dsts: Sequence[int]
    ) -> dict[int, frozenset[EdgeType]]: ...

    async def edge_types_of(self, src: int, *, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` of ``src``'s edges as ``(dst, type)``, in no order."""

    async def add(
        self, src: int, type_: EdgeType, dst: int, *, pos: int, created_at: datetime
    ) -> bool: ...

    async def remove(self, src: int, type_: EdgeType, dst: int) -> bool: ...

    async def range(
        self, src: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]: ...

    async def range_many(
        self, srcs: Sequence[int], type_: EdgeType, *, limit: int
    ) -> dict[int, list[EdgeRow]]:
        """The newest ``limit`` edges of each of ``srcs``, in one query."""

    async def newest_with_degree(
        self, src: int, type_: EdgeType, *, limit: int
    ) -> list[tuple[int, int | None]]:
        """The newest ``limit`` dsts, each with its count of ``type_`` edges (None: not active)."""

    async def second_degree(
        self,
        src: int,
        type_: EdgeType,
        weights: Sequence[tuple[int, float]],
        *,
        fanout: int,
        exclude: Iterable[EdgeType],
        rank_limit: int,
        limit: int,
    ) -> list[tuple[int, int, float]]:
        """(user, how many weighted users lead there, sum of their weights), best first."""

    async def friends_of_friends(
        self,
        viewers: Sequence[int],
        type_: EdgeType,
        *,
        fanout: int,
        exclude: Iterable[EdgeType],
        rank_limit: int,
        limit: int,
    ) -> dict[int, list[tuple[int, int, float]]]:
        """Per viewer: ``second_degree`` weighted by Adamic-Adar over ``newest_with_degree``."""

    async def time_range(
        self, src: int, type_: EdgeType, *, since: datetime, until: datetime, limit: int
    ) -> list[EdgeRow]: ...

    async def has(self, src: int, type_: EdgeType, dsts: Sequence[int]) -> set[int]: ...

    async def has_from(self, srcs: Sequence[int], type_: EdgeType, dst: int) -> set[int]:
        """Which of ``srcs`` have an edge of ``type_`` to ``dst`` (for edges without an
        inverse, such as mutes)."""

    async def counts(
        self, srcs: Sequence[int], types: Sequence[EdgeType]
    ) -> dict[int, dict[EdgeType, int]]: ...

    async def mutual(
        self, a: int, b: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]: ...

    async def erase(self, user_id: int) -> set[int]:
        """Remove every edge of the user; the users on the other ends."""


class SendRepository(Protocol):
    """The statements of a group of sends (group commit), each for the whole group."""

    async def lock(self, conversation_ids: Sequence[int]) -> dict[int, Conversation]:
        """The conversations found, locked in ascending id order until the end."""

    async def member_ids(self, conversation_ids: Sequence[int]) -> dict[int, set[int]]: ...

    async def by_client_ids(
        self, keys: Sequence[tuple[int, int, str]]
    ) -> dict[tuple[int, int, str], int]:
        """``(conversation, sender, client_msg_id)`` -> the id of the message sent so."""

    async def in_conversations(self, message_ids: Sequence[int]) -> dict[int, int]:
        """Message id -> conversation id, for the messages that exist."""

    async def edges_between(
        self, pairs: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], set[EdgeType]]: ...

    async def insert(self, new: Sequence[Message]) -> None: ...

    async def advance(self, last_seqs: dict[int, int], when: datetime) -> None:
        """Set each conversation's ``last_seq``; the caller holds the locks."""

    async def read_up_to(self, pointers: Sequence[tuple[int, int, int]]) -> None:
        """Move ``(conversation, user, seq)`` read pointers forward, never back."""

    async def facts(
        self,
        conversation_ids: Sequence[int],
        keys: Sequence[tuple[int, int, str]],
        direct: Sequence[tuple[int, int]],
    ) -> SendFacts:
        """With the conversations locked: their members, the messages sent before under
        ``keys`` (conversation, sender, client_msg_id) and, for each ``(sender,
        conversation)`` of ``direct``, the conversation's other member."""

    async def lock_with_facts(
        self,
        conversation_ids: Sequence[int],
        keys: Sequence[tuple[int, int, str]],
        senders: Sequence[tuple[int, int]],
    ) -> tuple[dict[int, SendTarget], SendFacts]:
        """On the driver (PostgreSQL), as a transaction's first statements: ``lock`` and
        ``facts`` in two round trips (the locks sent with ``BEGIN``); the conversations
        found, and ``facts`` with ``direct`` those of ``senders`` to direct ones."""

    @property
    def writes_at_once(self) -> bool:
        """Does ``write`` take a group's writes in one statement?"""

    async def write(
        self,
        new: Sequence[Message],
        last_seqs: dict[int, int],
        pointers: Sequence[tuple[int, int, int]],
        domain: Sequence[DomainEvent],
        log: Sequence[Event],
        when: datetime,
    ) -> list[Event]:
        """``insert``, ``advance``, ``read_up_to``, the stream's events and the logs'
        append in one statement (``writes_at_once``); the logged events, numbered."""


class ThreadRepository(Protocol):
    """Threads (docs/threads.md): roots' summaries and per-thread read pointers."""

    async def roots(self, ids: Sequence[int]) -> dict[int, ThreadRoot]:
        """The messages of ``ids`` that exist, as would-be roots."""

    async def set_summary(self, root_id: int, summary: ThreadSummary) -> None: ...

    async def recount(self, root_id: int) -> ThreadSummary:
        """The summary of the root's live replies as they stand (not stored)."""

    async def read_up_to(self, pointers: Sequence[tuple[int, int, int]]) -> None:
        """Move ``(root, user, seq)`` read pointers forward, never back."""

    async def pointer(self, root_id: int, user_id: int) -> int: ...

    async def unread(self, user_id: int, root_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Root -> (the user's read pointer, live replies of others past it)."""

    async def forget_user(self, user_id: int) -> None: ...


class OutboxRepository(Protocol):
    """Every user's event log (see domain/events.py)."""

    async def add(self, events: Sequence[Event], when: datetime) -> list[Event]:
        """Append to the recipients' logs in this transaction; the events, numbered."""

    async def for_user(self, user_id: int, *, after_seq: int, limit: int) -> list[Event]:
        """Events after ``after_seq``, oldest first."""

    async def page(self, user_id: int, *, after_seq: int, limit: int) -> LogPage:
        """``for_user`` and how far the log was pruned, read together (one snapshot): a
        cursor below ``pruned_to`` has expired."""

    async def of_type(self, user_id: int, type_: str) -> list[Event]:
        """The events of one type in a user's log, oldest first."""

    async def about(self, message_id: int, *, except_types: Sequence[str]) -> list[Event]:
        """The logged events about a message, in every log, but those of ``except_types``."""

    async def set_payloads(self, events: Sequence[Event]) -> None:
        """Each logged event (by user and position) takes the payload given."""

    async def rewrite(
        self,
        payloads: Sequence[tuple[int, dict[str, Any]]],
        *,
        types: Sequence[str] = (),
        as_type: str | None = None,
    ) -> None:
        """For each ``(message_id, payload)``: every logged event about the message (of
        ``types`` when given) takes the payload (and ``as_type``), keeping its position."""

    async def prune(self, before: datetime, *, limit: int) -> int | None:
        """Drop about ``limit`` of the oldest events older than ``before`` (whole prefixes
        of each log, raising its ``pruned_to``); how many were found (< ``limit``: none
        older are left), or None when it gave way to another transaction's lock."""

    async def last_seq(self, user_id: int) -> int: ...

    async def last_seqs(self, user_ids: Sequence[int]) -> dict[int, int]:
        """``last_seq`` of many users; users without a log may be left out."""

    async def erase_user(self, user_id: int) -> None: ...


class ConversationRepository(Protocol):
    async def add(self, conversation: Conversation, *, direct_key: str | None) -> bool:
        """Insert; False when a direct conversation with that key already exists."""

    async def get(self, conversation_id: int, *, lock: bool = False) -> Conversation | None:
        """``lock`` holds the row until the transaction ends: it serializes senders."""

    async def by_direct_key(self, key: str) -> Conversation | None: ...

    async def update(self, conversation_id: int, **values: Any) -> Conversation | None: ...

    async def next_seq(self, conversation_id: int, when: datetime) -> int: ...

    async def for_user(
        self, user_id: int, *, limit: int, before: tuple[datetime, int] | None
    ) -> list[tuple[Conversation, Member]]: ...

    async def member(self, conversation_id: int, user_id: int) -> Member | None: ...
    async def with_member(
        self, conversation_id: int, user_id: int, *, lock: bool = False
    ) -> tuple[Conversation | None, Member | None]: ...

    async def with_member_and_block(
        self, conversation_id: int, user_id: int, *, lock: bool = False
    ) -> tuple[Conversation | None, Member | None, bool]:
        """``with_member``, and whether the conversation is a direct one whose other
        member and ``user_id`` are blocked either way, in one statement."""

    async def member_ids(self, conversation_id: int) -> list[int]: ...

    async def member_ids_many(self, conversation_ids: Sequence[int]) -> dict[int, list[int]]:
        """``member_ids`` of several conversations in one statement."""

    async def audience(self, conversation_id: int, speaker: int, *, typing: bool) -> list[int]:
        """The members who hear ``speaker``'s typing (``typing``) or read receipts: all but
        the speaker and those blocked either way with them; for typing, also not those
        who mute the speaker."""

    async def set_muted(self, conversation_id: int, user_id: int, muted: bool) -> bool:
        """Set the member's mute of the conversation; False when they are not a member."""

    async def members(
        self, conversation_id: int, *, limit: int, after_user_id: int | None
    ) -> list[Member]: ...

    async def first_members(
        self, conversation_ids: Sequence[int], viewer: int, *, limit: int
    ) -> dict[int, list[Member]]:
        """The first ``limit`` members (by user id) of each of the conversations that
        ``viewer`` is a member of, in one statement; the others are left out."""

    async def add_members(
        self,
        conversation_id: int,
        user_roles: Sequence[tuple[int, Role]],
        when: datetime,
        *,
        read_seq: int,
    ) -> list[int]: ...

    async def remove_member(self, conversation_id: int, user_id: int) -> bool: ...

    async def set_role(self, conversation_id: int, user_id: int, role: Role) -> bool: ...

    async def advance_read(self, conversation_id: int, user_id: int, seq: int) -> int: ...

    async def add_message(self, message: Message) -> None: ...

    async def message_by_client_id(
        self, conversation_id: int, sender_id: int, client_msg_id: str
    ) -> Message | None: ...

    async def message(self, conversation_id: int, message_id: int) -> Message | None: ...

    async def history(
        self,
        conversation_id: int,
        *,
        limit: int,
        before_seq: int | None,
        after_seq: int | None,
        thread_root_id: int | None = None,
    ) -> list[Message]: ...

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, Message]: ...

    async def update_message(self, message_id: int, **values: Any) -> None: ...

    async def expired(self, now: datetime, *, limit: int) -> list[Message]: ...

    async def react(self, message_id: int, user_id: int, emoji: str, when: datetime) -> None: ...

    async def unreact(self, message_id: int, user_id: int, emoji: str) -> None: ...

    async def unreact_all(self, message_id: int) -> None: ...

    async def reaction_counts(self, message_ids: Sequence[int]) -> dict[int, dict[str, int]]: ...

    async def messages_by(self, user_id: int) -> list[Message]: ...

    async def lock_for_user(self, user_id: int) -> list[int]:
        """Lock (in id order) the conversations the user is in or wrote in; their ids."""

    async def reacted_by(self, user_id: int) -> dict[int, int]:
        """The messages the user has a reaction on: message id -> conversation id."""

    async def erase_messages_by(self, user_id: int, when: datetime) -> list[Message]:
        """Erase the content of the user's messages; those that were not yet deleted."""


class NotificationRepository(Protocol):
    async def add(self, items: Sequence[Notification]) -> None: ...

    async def page(
        self, user_id: int, *, limit: int, before_id: int | None
    ) -> list[Notification]: ...

    async def unread_count(self, user_id: int) -> int: ...

    async def mark_read(self, user_id: int, up_to_id: int) -> int: ...

    async def erase_user(self, user_id: int) -> None: ...

    async def erase_about(self, message_ids: Sequence[int]) -> None:
        """Delete the notifications about these messages."""

    async def about(self, message_id: int) -> list[Notification]:
        """The notifications about one message, in every inbox."""

    async def set_payloads(self, items: Sequence[Notification]) -> None:
        """Each notification (by id) takes the payload given."""


class OneTimeTokenRepository(Protocol):
    """Single-use tokens, stored by their hash (domain/one_time_tokens.py)."""

    async def add(self, token: OneTimeToken) -> None: ...

    async def get(self, token_hash: bytes, purpose: TokenPurpose) -> OneTimeToken | None: ...

    async def spend(self, token_hash: bytes, purpose: TokenPurpose, when: datetime) -> bool:
        """Mark the token used if it is unused and unexpired at ``when``; exactly one of
        concurrent callers gets True."""

    async def count_failure(self, token_hash: bytes, *, max_attempts: int, when: datetime) -> int:
        """Add a failed attempt; the token is spent once it reaches ``max_attempts``.
        The attempts so far."""

    async def delete_for_user(self, user_id: int, purposes: Sequence[TokenPurpose]) -> None:
        """Void every token of these purposes the user holds."""

    async def purge(self, before: datetime) -> int:
        """Delete tokens that expired before ``before``; how many."""


class MfaRepository(Protocol):
    """Each user's TOTP factor (at most one) and recovery codes."""

    async def factor(self, user_id: int) -> TotpFactor | None: ...

    async def put_factor(self, factor: TotpFactor) -> None:
        """Insert or replace the user's factor."""

    async def confirm_factor(self, user_id: int, when: datetime, step: int) -> bool:
        """Enable a pending factor, its first code's step used; False when none was pending."""

    async def use_step(self, user_id: int, step: int) -> bool:
        """Record ``step`` as used if it is later than the last one used; exactly one of
        concurrent callers with the same step gets True (no replay)."""

    async def delete_factor(self, user_id: int) -> bool:
        """Remove the factor and every recovery code; False when there was no factor."""

    async def replace_recovery_codes(self, user_id: int, codes: Sequence[RecoveryCode]) -> None: ...

    async def unused_recovery_codes(self, user_id: int) -> list[RecoveryCode]: ...

    async def use_recovery_code(self, user_id: int, code_hash: bytes, when: datetime) -> bool:
        """Spend one code; exactly one of concurrent callers gets True."""


class AuthChallengeRepository(Protocol):
    """Single-use challenges of sign-in ceremonies, by their hash (domain/federation.py)."""

    async def add(self, challenge: AuthChallenge) -> None: ...

    async def get(self, token_hash: bytes) -> AuthChallenge | None: ...

    async def spend(
        self, token_hash: bytes, purposes: tuple[ChallengePurpose, ...], when: datetime
    ) -> AuthChallenge | None:
        """Mark the challenge used if it is of one of ``purposes``, unused and unexpired at
        ``when``, and answer it; exactly one of concurrent callers gets it."""

    async def purge(self, before: datetime) -> int:
        """Delete challenges that expired before ``before``; how many."""


class IdentityRepository(Protocol):
    """Identities at OpenID Connect providers, each linked to one account."""

    async def get(self, provider: str, subject: str) -> FederatedIdentity | None: ...

    async def for_user(self, user_id: int) -> list[FederatedIdentity]: ...

    async def add(self, identity: FederatedIdentity) -> None:
        """Insert; the (provider, subject) pair is unique."""

    async def touch(
        self, provider: str, subject: str, when: datetime, email: str | None
    ) -> None: ...

    async def delete(self, user_id: int, provider: str, subject: str) -> bool: ...

    async def count(self, user_id: int) -> int: ...


class PasskeyRepository(Protocol):
    """WebAuthn credentials."""

    async def add(self, passkey: Passkey) -> None:
        """Insert; the credential id is unique."""

    async def by_credential(self, credential_id: bytes) -> Passkey | None: ...

    async def get(self, user_id: int, passkey_id: int) -> Passkey | None: ...

    async def for_user(self, user_id: int) -> list[Passkey]: ...

    async def use(self, passkey_id: int, *, old_count: int, new_count: int, when: datetime) -> bool:
        """Store the new signature counter if the stored one is still ``old_count``."""

    async def rename(self, user_id: int, passkey_id: int, name: str) -> bool: ...

    async def delete(self, user_id: int, passkey_id: int) -> bool: ...

    async def count(self, user_id: int) -> int: ...


class AuditRepository(Protocol):
    """The administrators' audit log (domain/audit.py)."""

    async def add(self, entry: AuditEntry) -> None: ...

    async def page(
        self,
        *,
        limit: int,
        before_id: int | None = None,
        actor_id: int | None = None,
        via: Via | None = None,
        action: str | None = None,
        target_id: int | None = None,
    ) -> list[AuditEntry]:
        """Entries newest first, with the actor's and a user target's current username;
        each filter given narrows the list."""

    async def erase_user(self, user_id: int) -> None:
        """The account is being erased: keep its id in the entries, drop the address it
        acted from and free text about it (``ERASED_DETAILS``)."""


class ReportRepository(Protocol):
    """Abuse reports (domain/reports.py)."""

    async def add(self, report: Report) -> Report:
        """Insert; when the reporter already has an open report on the target, that one
        (nothing is inserted)."""

    async def get(self, report_id: int, *, lock: bool = False) -> Report | None: ...

    async def page(
        self, *, limit: int, before_id: int | None = None, status: ReportStatus | None = None
    ) -> list[Report]:
        """Newest first, each with the reported message as it now is."""

    async def by_reporter(self, user_id: int, *, limit: int) -> list[Report]:
        """The reports ``user_id`` made, oldest first."""

    async def resolve(
        self,
        report_id: int,
        *,
        when: datetime,
        by: int | None,
        action: ReportAction,
        note: str | None,
    ) -> bool:
        """Close an open report; False when it was not open."""

    async def message_seen_by(self, message_id: int, user_id: int) -> ReportedMessage | None:
        """The message when ``user_id`` is a member of its conversation and it is not
        deleted."""

    async def erase_user(self, user_id: int) -> None:
        """Drop the free text of the reports the account made and of those about it."""


class DomainEventRepository(Protocol):
    """The outbox of domain events (domain/stream.py): appended in the writing
    transaction, emptied by the relay."""

    async def add(self, events: Sequence[DomainEvent]) -> None: ...

    async def unsent(self, limit: int) -> list[DomainEvent]:
        """The oldest events not yet published, by id."""

    async def mark_sent(self, ids: Sequence[int]) -> None: ...

    async def pending(self) -> int: ...

    async def bodies(self, message_ids: Sequence[int]) -> dict[int, str]:
        """The bodies of those messages that still have content."""


class StreamRepository(Protocol):
    """The stream kept in the database (when it is not in JetStream)."""

    async def append(self, events: Sequence[DomainEvent]) -> None:
        """Append in order; an event already there (by id) is not added again."""

    async def read(
        self, *, after: int, types: Sequence[str] = (), limit: int
    ) -> list[StreamedEvent]: ...

    async def head(self) -> int: ...

    async def position_at(self, when: datetime) -> int: ...

    async def prune(self, before: datetime, *, limit: int) -> int:
        """Drop up to ``limit`` of the oldest events that occurred before ``before``."""


class LeaseRepository(Protocol):
    async def take(self, name: str, holder: str, *, now: datetime, until: datetime) -> bool:
        """Take or renew lease ``name`` for ``holder`` until ``until``; True when held."""

    async def release(self, name: str, holder: str, *, now: datetime) -> None: ...


class WebhookRepository(Protocol):
    async def add(self, hook: Webhook) -> None: ...

    async def get(self, webhook_id: int, *, lock: bool = False) -> Webhook | None: ...

    async def list_all(self) -> list[Webhook]: ...

    async def due(self, now: datetime) -> list[Webhook]:
        """Enabled endpoints not waiting for a retry."""

    async def update(self, webhook_id: int, changes: Mapping[str, Any]) -> Webhook | None: ...

    async def delete(self, webhook_id: int) -> bool: ...

    async def add_delivery(self, delivery: WebhookDelivery) -> None: ...

    async def deliveries(
        self, webhook_id: int, *, limit: int, before_id: int | None
    ) -> list[WebhookDelivery]:
        """Newest first."""


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status_code: int
    latency_ms: int


class WebhookRefused(Exception):
    """The request was not made or failed: a refused destination (SSRF guard), a
    timeout, a connection error. ``reason`` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SuggestionListRepository(Protocol):
    """Precomputed suggestion lists (storage/suggestion_lists.py, decision 0028)."""

    async def get(self, user_id: int) -> bytes | None: ...

    async def put(
        self, rows: Sequence[tuple[int, bytes]], *, now: datetime, due: datetime
    ) -> None: ...

    async def mark_due(self, user_ids: Sequence[int], *, at: datetime) -> int: ...

    async def due(self, now: datetime, *, limit: int) -> list[int]: ...

    async def drop(self, user_ids: Sequence[int]) -> None: ...

    async def drop_orphans(self, user_ids: Sequence[int]) -> None: ...


class PushRepository(Protocol):
    """Push devices, per-kind notification settings, the VAPID key, the notifier's stream
    position, and what the notifier reads about messages (storage/push.py)."""

    async def put_device(self, device: Device) -> Device:
        """Register; an endpoint registered before (by anyone) is replaced."""

    async def devices(self, user_ids: Sequence[int]) -> list[Device]: ...

    async def count_devices(self, user_id: int) -> int: ...

    async def delete_device(self, user_id: int, device_id: int) -> bool: ...

    async def drop_devices(self, device_ids: Sequence[int]) -> None: ...

    async def pushed(self, device_ids: Sequence[int], when: datetime) -> None: ...

    async def erase_user(self, user_id: int) -> None: ...

    async def settings(self, user_ids: Sequence[int]) -> dict[int, NotificationSettings]:
        """Users without a row are left out (all kinds on)."""

    async def put_settings(
        self, user_id: int, value: NotificationSettings, when: datetime
    ) -> None: ...

    async def vapid_key(self) -> str | None: ...

    async def add_vapid_key(self, kid: str, pem: str, when: datetime) -> None: ...

    async def position(self, name: str) -> int: ...

    async def start_at(self, name: str, position: int) -> bool:
        """Create a consumer at ``position`` unless it exists; whether it did."""

    async def move(self, name: str, before: int, after: int) -> bool:
        """Compare-and-set of a consumer's position; False when it moved meanwhile."""

    async def messages(
        self, message_ids: Sequence[int]
    ) -> dict[int, tuple[int, int | None, str | None]]:
        """``(conversation_id, sender_id, body or None when deleted)`` per message."""

    async def members(self, conversation_ids: Sequence[int]) -> dict[int, dict[int, bool]]:
        """Active members of each conversation, each with whether they muted it."""

    async def usernames(self, user_ids: Sequence[int]) -> dict[int, str]: ...

    async def quiet(self, recipients: Sequence[int], actors: Sequence[int]) -> set[tuple[int, int]]:
        """``(recipient, actor)``: the recipient mutes or blocks the actor, or is blocked."""


class PushSender(Protocol):
    """Sends one push to one device (push/): Web Push (encrypted, VAPID-signed) or the
    operator's gateway. Raises WebhookRefused when no answer came (refused destination,
    timeout, connection error)."""

    def supports(self, kind: str) -> bool: ...

    async def send(self, device: Device, payload: bytes, *, topic: str, ttl: int) -> int:
        """The push service's HTTP status."""

    async def close(self) -> None: ...


class WebhookSender(Protocol):
    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        """POST ``body`` to ``url``; the answer's status. Raises WebhookRefused."""

    async def close(self) -> None: ...


class EventStream(Protocol):
    """The durable event stream: JetStream (clustered) or a database table (embedded).
    Positions start at 1 and only grow; ``types`` are names or ``prefix.*``."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        """Append in order and return once durable. Publishing an event again (same id)
        adds nothing (JetStream: within the duplicate window). Raises Unavailable."""

    async def read(
        self, *, after: int, types: Sequence[str] = (), limit: int
    ) -> list[StreamedEvent]:
        """Up to ``limit`` events after position ``after``, oldest first."""

    async def head(self) -> int:
        """The last position (0: empty)."""

    async def position_at(self, when: datetime) -> int:
        """The position to read ``after`` to start at the first event at/after ``when``."""


class SearchRepository(Protocol):
    """Message search (docs/search.md) over the index the database keeps with the
    messages."""

    async def messages(
        self,
        viewer: int,
        words: Sequence[str],
        *,
        conversation_id: int | None,
        now: datetime,
        limit: int,
        offset: int,
    ) -> list[SearchHit]:
        """Live messages holding every word, in the conversations ``viewer`` is a member
        of (or ``conversation_id`` alone), best first: ``limit`` after ``offset``."""


class AttachmentRepository(Protocol):
    """Uploads (domain/attachments.py). A doomed one is read by nobody; the purge deletes
    its bytes, then its row."""

    async def add(self, attachment: Attachment) -> None: ...

    async def readable(self, attachment_id: int, viewer: int) -> Attachment | None:
        """The attachment, when ``viewer`` uploaded it or is a member of the conversation
        it was sent in, and it is not doomed."""

    async def get_many(self, attachment_ids: Sequence[int]) -> list[Attachment]:
        """Those of the ids that exist and are not doomed."""

    async def link(
        self, attachment_ids: Sequence[int], owner_id: int, message_id: int, conversation_id: int
    ) -> int:
        """Attach the owner's unsent uploads to a message, in one statement; how many were."""

    async def doom_for_messages(self, message_ids: Sequence[int], when: datetime) -> int: ...

    async def doom_owned_by(self, owner_id: int, when: datetime) -> int: ...

    async def doom_unsent(self, before: datetime, when: datetime, *, limit: int) -> int:
        """Uploads never sent, made before ``before``; how many."""

    async def doomed(self, *, limit: int) -> list[int]: ...

    async def remove(self, attachment_ids: Sequence[int]) -> None:
        """Delete the rows of doomed attachments (their bytes are gone)."""


class BlobStore(Protocol):
    """Where the bytes of attachments live: files under the data dir, or an S3-compatible
    object store (``socius/blobs``). Keys are short paths of ``[a-z0-9/]``. A store that
    cannot be reached raises ``Unavailable``."""

    async def start(self) -> None: ...

    async def put(
        self, key: str, source: Path, *, size: int, sha256: str, content_type: str
    ) -> None:
        """Store the file at ``source`` (``size`` bytes, SHA-256 ``sha256`` in hex) under
        ``key``, replacing what was there. ``source`` may be moved away."""

    async def read(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes under ``key`` from ``offset`` (``length`` of them, or to the end),
        in chunks. Raises ``BlobMissing`` (before the first chunk) when there are none."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these keys; missing ones are no error."""

    def presign(
        self, key: str, *, expires_seconds: int, content_type: str, disposition: str
    ) -> str | None:
        """A URL anyone may GET the bytes from until it expires; None when the store has
        no such URLs (files)."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class Images(Protocol):
    """Image work for attachments (Pillow, extra ``socius[images]``)."""

    @property
    def available(self) -> bool: ...

    def dimensions(self, path: Path) -> tuple[int, int] | None:
        """Width and height from the file's header; None when it is not a readable image."""

    def thumbnail(self, path: Path, size: int) -> bytes | None:
        """A WebP of the image that fits in ``size`` x ``size``; None when it cannot be
        read (or is too large to decode)."""


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless ``commit`` is called."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def signing_keys(self) -> SigningKeyRepository: ...

    @property
    def edges(self) -> EdgeRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def notifications(self) -> NotificationRepository: ...

    @property
    def one_time_tokens(self) -> OneTimeTokenRepository: ...

    @property
    def mfa(self) -> MfaRepository: ...

    @property
    def domain_events(self) -> DomainEventRepository: ...

    @property
    def stream(self) -> StreamRepository: ...

    @property
    def leases(self) -> LeaseRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def sends(self) -> SendRepository: ...

    @property
    def challenges(self) -> AuthChallengeRepository: ...

    @property
    def identities(self) -> IdentityRepository: ...

    @property
    def passkeys(self) -> PasskeyRepository: ...

    @property
    def attachments(self) -> AttachmentRepository: ...

    @property
    def reports(self) -> ReportRepository: ...

    @property
    def threads(self) -> ThreadRepository: ...

    @property
    def search(self) -> SearchRepository: ...

    @property
    def push(self) -> PushRepository: ...

    @property
    def suggestion_lists(self) -> SuggestionListRepository: ...

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
    def __call__(
        self, *, write: bool = True, replica: bool = False, driver: bool = False
    ) -> UnitOfWork:
        """A unit of work; ``replica=True`` allows a lag-tolerant read replica;
        ``driver=True``: the work's statements all go to the database driver, which may
        then run it without the SQL toolkit (decision 0033)."""


class HotReads(Protocol):
    """The hottest primary-key reads, on the database driver itself (storage/reads.py):
    one committed row, without a unit of work."""

    @property
    def available(self) -> bool: ...

    async def user(self, user_id: int) -> User | None: ...

    # The graph's cold reads (decision 0026): what the cache fills from.

    async def edge_range(
        self, src: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]: ...

    async def edge_types(self, src: int, dsts: Sequence[int]) -> dict[int, frozenset[EdgeType]]: ...

    async def blocked(self, src: int, *, limit: int) -> list[int]:
        """Up to ``limit`` users ``src`` blocks or is blocked by."""
        ...

    async def edge_types_of(self, src: int, *, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` of ``src``'s edges as ``(dst, type)``, in no order."""
        ...

    async def edge_range_with_users(
        self, src: int, type_: EdgeType, *, limit: int, types: Sequence[EdgeType]
    ) -> list[tuple[EdgeRow, ListedUserRow | None]]:
        """A list's newest ``limit`` rows, each with its user (None: gone) and counts."""
        ...

    async def first_read(
        self,
        *,
        owner: int,
        blocks_of: int | None,
        blocks_limit: int,
        profile: bool,
        page: tuple[EdgeType, int] | None,
        types: Sequence[EdgeType],
    ) -> tuple[list[int], ListedUserRow | None, list[tuple[EdgeRow, ListedUserRow | None]]]:
        """``blocked`` of a viewer, ``listed_users`` of ``owner`` and
        ``edge_range_with_users`` of a first page of ``owner``'s list, the parts asked
        for, in one statement."""
        ...

    async def mutual_with_users(
        self,
        a: int,
        b: int,
        type_: EdgeType,
        *,
        limit: int,
        before_pos: int | None,
        types: Sequence[EdgeType],
    ) -> list[tuple[EdgeRow, ListedUserRow | None]]:
        """``mutual``, each row with its user (None: gone) and counts."""
        ...

    async def users_with_counts(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[tuple[User, dict[EdgeType, int]]]: ...

    async def listed_users(
        self, user_ids: Sequence[int], types: Sequence[EdgeType]
    ) -> list[ListedUserRow]: ...

    async def mutual(
        self, a: int, b: int, type_: EdgeType, *, limit: int, before_pos: int | None = None
    ) -> list[EdgeRow]: ...

    async def suggestion_list(self, user_id: int) -> bytes | None:
        """A user's stored suggestions (encoded), None when never computed."""
        ...


class RefreshRotation(Protocol):
    """A refresh's rotation as one atomic statement (PostgreSQL, decision 0030)."""

    async def rotate(
        self, token_hash: bytes, successor_hash: bytes, successor_salt: bytes, when: datetime
    ) -> tuple[Session, User] | None:
        """Spend a live token whose session and user are usable at ``when`` and store its
        successor: the session and the user. None when nothing was written."""
        ...

    async def rotate_many(
        self, ops: Sequence[tuple[bytes, bytes, bytes, datetime]]
    ) -> Sequence[tuple[Session, User] | None]:
        """``rotate`` of each ``(token_hash, successor_hash, successor_salt, when)``, at
        once (decision 0044): an answer per op, in order. None for an op: nothing was
        written for it (its token was not spent, or was the same as an earlier op's)."""
        ...


class Cache(Protocol):
    """A small key-value store with expiry: in-process or Redis."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float) -> None: ...

    async def set_many(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        """``set`` each ``(key, value, ttl)``, in one round trip."""
        ...

    async def delete(self, *keys: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one; the window's expiry is set on the first increment."""

    async def ttl(self, key: str) -> float:
        """Seconds until ``key`` expires, 0 when it does not exist."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of ``keys`` (one round trip on Redis)."""

    async def lease(self, key: str, *, ttl: float) -> str | None:
        """Take the right to fill ``key``: a token, or None while someone else holds it."""

    async def lease_many(self, keys: Sequence[str], *, ttl: float) -> list[str | None]: ...

    async def get_or_lease(self, key: str, *, ttl: float) -> tuple[bytes | None, str | None]:
        """``get``, and on a miss ``lease`` as well, at once (one round trip on Redis):
        ``(value, None)``, ``(None, token)``, or ``(None, None)`` while another holds it."""

    async def get_many_or_lease(
        self, keys: Sequence[str], *, ttl: float
    ) -> list[tuple[bytes | None, str | None]]:
        """``get_or_lease`` for each of ``keys``, in their order, in one round trip."""

    async def fill(self, key: str, value: bytes, *, ttl: float, token: str) -> bool:
        """Store ``value`` only if the lease ``token`` still holds (no invalidation came
        in between), and release the lease. False when the value was not stored."""

    async def fill_many(self, items: Sequence[tuple[str, bytes, str]], *, ttl: float) -> None:
        """``fill`` for many (key, value, token) at once."""

    async def invalidate(self, *keys: str) -> None:
        """Delete ``keys`` and break their leases, so that a fill started before this
        call cannot store a value read before the write that caused it."""

    async def take_tokens(self, items: Sequence[tuple[str, float, int]]) -> list[float]:
        """Token buckets, one per key (GCRA): bucket ``(key, interval, burst)`` holds up
        to ``burst`` tokens and gains one every ``interval`` seconds. Take one token from
        each item's bucket, in order (a key named twice gives twice); for each, 0.0 when
        taken, else the seconds until one will be there (nothing is taken then). One round
        trip on Redis, whose clock all nodes share."""
        ...

    async def claim_slots(
        self, items: Sequence[tuple[str, str]], *, limit: int, ttl: float
    ) -> list[bool]:
        """Sets of expiring members: for each ``(key, member)``, in order, add ``member``
        to the set ``key`` (it expires ``ttl`` seconds from now) unless the set already
        holds ``limit`` live members; True when it was added or already held. One round
        trip on Redis."""
        ...

    async def renew_slots(self, items: Sequence[tuple[str, str]], *, ttl: float) -> None:
        """Move the expiry of these members (those still held) to ``ttl`` from now."""
        ...

    async def release_slots(self, items: Sequence[tuple[str, str]]) -> None:
        """Remove these members from their sets."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class CacheAndBus(Protocol):
    """The shared cache and the bus on one connection (Redis for both, bus/redis.py's
    ``RedisCacheAndBus``), where an invalidation and the messages that must follow it
    leave together: the broker runs them in order (decision 0040)."""

    async def invalidate_and_publish(
        self, keys: Sequence[str], messages: Sequence[tuple[str, bytes]]
    ) -> tuple[bool, bool]:
        """``Cache.invalidate(*keys)``, then ``Bus.publish_many(messages)``, in one round
        trip; whether each was done. Never raises for an outage."""
        ...


class Mailer(Protocol):
    """Outbound mail: SMTP, or files in an outbox folder. Services never call it inside a
    transaction; they hand mails to ``services/mail_queue.py`` after commit."""

    async def send(self, mail: Mail) -> None:
        """Render and deliver one mail. Raises MailUnavailable when it may work later
        (server down, timeout, a temporary refusal) and MailRejected when it never will."""

    async def close(self) -> None: ...


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    """Cross-node fan-out of live events. Best effort: at most once, per subject in
    publish order. Durability comes from the database's event log, not from the bus."""

    async def start(self) -> None: ...

    async def publish(self, subject: str, payload: bytes) -> None:
        """Send ``payload`` to every current subscriber of ``subject`` on any node.
        Raises BusUnavailable when the bus cannot be reached."""

    async def publish_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """``publish`` each ``(subject, payload)``, in order, in as few round trips as the
        bus allows (one, on the buses here). Raises BusUnavailable as ``publish``."""

    async def subscribe(
        self, subject: str, handler: Callable[[bytes], Awaitable[None]]
    ) -> Subscription:
        """Call ``handler`` for each payload published to ``subject`` from now on. A
        handler object with a ``now(payload)`` method that never waits may be called
        through that instead, in the bus's own reading call (no coroutine, no task)."""

    async def ping(self) -> None: ...

    def watch(self, on_change: Callable[[bool], None]) -> None:
        """Call ``on_change(False)`` when the connection to the broker is lost (what is
        published meanwhile may never arrive) and ``on_change(True)`` once it is back with
        its subscriptions (services/bus_link.py then catches up from the database)."""
        ...

    async def close(self) -> None: ...
