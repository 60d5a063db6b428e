"""The schema. Migrations in ``migrations/`` create exactly this (a test compares them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from socius.storage.types import UtcDateTime

__all__ = [
    "attachments",
    "audit_log",
    "auth_challenges",
    "domain_events",
    "event_stream",
    "federated_identities",
    "leases",
    "members",
    "messages",
    "metadata",
    "notification_settings",
    "notifications",
    "one_time_tokens",
    "passkeys",
    "push_devices",
    "reactions",
    "recovery_codes",
    "refresh_tokens",
    "reports",
    "revoked_sessions",
    "sessions",
    "signing_keys",
    "stream_consumers",
    "suggestion_lists",
    "totp_factors",
    "user_events",
    "user_seqs",
    "users",
    "vapid_keys",
    "webhook_deliveries",
    "webhooks",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(32), nullable=False, unique=True),
    Column("email", String(254), nullable=True, unique=True),
    Column("display_name", String(64), nullable=False),
    Column("bio", Text, nullable=False, default=""),
    Column("avatar_url", String(2048), nullable=True),
    Column("is_private", Boolean, nullable=False, default=False),
    Column("dm_policy", String(16), nullable=False, default="everyone"),
    Column("password_hash", String(255), nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # When the current email was verified; cleared whenever the email changes.
    Column("email_verified_at", UtcDateTime, nullable=True),
)
# The administrators, found without a scan (the last-admin rule counts them).
Index(
    "ix_users_is_admin",
    users.c.is_admin,
    sqlite_where=users.c.is_admin == true(),
    postgresql_where=users.c.is_admin == true(),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True, index=True),
    Column("user_agent", String(512), nullable=False, default=""),
    Column("ip", String(64), nullable=False, default=""),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column(
        "session_id",
        BigInteger,
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("spent_at", UtcDateTime, nullable=True),
    # Set when spent: the per-token secret its successor is derived with (refresh grace).
    Column("successor_salt", LargeBinary(16), nullable=True),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(32), primary_key=True),
    Column("private_key_pem", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retired_at", UtcDateTime, nullable=True),
)

# The durable revocation list. It names sessions only (no user), so it outlives an erased
# account; a row is needed until every access token of that session has expired.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("session_id", BigInteger, primary_key=True, autoincrement=False),
    Column("until", UtcDateTime, nullable=False, index=True),
)

# The association store: typed, directed edges, newest first by ``pos`` (a time-ordered
# id shared by an edge and its inverse). No foreign keys: erasing a user removes their
# edges explicitly and corrects the other side's counts.
edges = Table(
    "edges",
    metadata,
    Column("src", BigInteger, primary_key=True, autoincrement=False),
    Column("type", SmallInteger, primary_key=True, autoincrement=False),
    Column("dst", BigInteger, primary_key=True, autoincrement=False),
    Column("pos", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
# On PostgreSQL it covers the list pages and the suggestion refresher's reads (index-only
# scans; decision 0051); SQLite has no INCLUDE.
Index(
    "ix_edges_src_type_pos",
    edges.c.src,
    edges.c.type,
    edges.c.pos,
    postgresql_include=["dst", "created_at"],
)

# Stored counts, kept exact in the transaction that adds or removes an edge. On SQLite a
# WITHOUT ROWID table: a look-up by (src, type) is one b-tree descent (decision 0059).
edge_counts = Table(
    "edge_counts",
    metadata,
    Column("src", BigInteger, primary_key=True, autoincrement=False),
    Column("type", SmallInteger, primary_key=True, autoincrement=False),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Every user's log of events, numbered per user (see domain/events.py). ``message_id``
# names the message an event is about: erasing or editing it rewrites those rows in place
# (found through the partial index). ``created_at`` orders the retention's pruning.
user_events = Table(
    "user_events",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("message_id", BigInteger, nullable=True),
)
Index(
    "ix_user_events_message_id",
    user_events.c.message_id,
    sqlite_where=user_events.c.message_id.isnot(None),
    postgresql_where=user_events.c.message_id.isnot(None),
)
Index("ix_user_events_created_at", user_events.c.created_at)

# The last number handed out in each user's log; its row lock orders the writers.
# ``pruned_to``: every position up to it has been pruned (retention); a cursor below it
# has expired.
user_seqs = Table(
    "user_seqs",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("pruned_to", BigInteger, nullable=False, server_default=text("0")),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(8), nullable=False),
    Column("title", String(100), nullable=True),
    Column("owner_id", BigInteger, nullable=True),
    Column("direct_key", String(48), nullable=True, unique=True),
    Column("message_ttl_seconds", Integer, nullable=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("member_count", Integer, nullable=False),
    Column("last_message_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("conversation_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("role", String(8), nullable=False),
    Column("joined_at", UtcDateTime, nullable=False),
    Column("last_read_seq", BigInteger, nullable=False),
    Column("muted", Boolean, nullable=False, server_default=false()),
)
Index("ix_members_user_id", members.c.user_id)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("conversation_id", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", BigInteger, nullable=True),
    Column("client_msg_id", String(64), nullable=False),
    Column("body", Text, nullable=True),
    Column("reply_to", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("edited_at", UtcDateTime, nullable=True),
    Column("deleted_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True, index=True),
    # What the message carries (domain/attachments.py, Attachment.snapshot), in order;
    # NULL for none, and once the message is deleted.
    Column("attachments", JSON, nullable=True),
    # Threads (docs/threads.md, migration 0014): the root a reply belongs to; on a root,
    # the summary of its live replies (NULL count: never had a reply) and the first
    # distinct repliers (a JSON list of ids, in the order they first replied).
    Column("thread_root_id", BigInteger, nullable=True),
    Column("thread_reply_count", Integer, nullable=True),
    Column("thread_last_reply_at", UtcDateTime, nullable=True),
    Column("thread_participants", JSON, nullable=True),
    UniqueConstraint("conversation_id", "seq"),
    UniqueConstraint("conversation_id", "sender_id", "client_msg_id"),
)
Index("ix_messages_sender_id", messages.c.sender_id)
Index("ix_messages_thread_root_id_seq", messages.c.thread_root_id, messages.c.seq)

# Per-thread read pointers: the caller's ``last_read_seq`` (a conversation seq) in a thread.
thread_reads = Table(
    "thread_reads",
    metadata,
    Column("root_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("last_read_seq", BigInteger, nullable=False),
)
Index("ix_thread_reads_user_id", thread_reads.c.user_id)

reactions = Table(
    "reactions",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("emoji", String(64), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_reactions_user_id", reactions.c.user_id)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("read", Boolean, nullable=False),
    Column("message_id", BigInteger, nullable=True),
)
Index("ix_notifications_user_id_id", notifications.c.user_id, notifications.c.id)
Index(
    "ix_notifications_message_id",
    notifications.c.message_id,
    sqlite_where=notifications.c.message_id.isnot(None),
    postgresql_where=notifications.c.message_id.isnot(None),
)

# Single-use secrets (email verification, password reset, a login's second step), kept
# by their SHA-256 only (domain/one_time_tokens.py). A mailed token names the address it
# went to and is void once the account's email differs.
one_time_tokens = Table(
    "one_time_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("email", String(254), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("used_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
)

# Each user's TOTP authenticator: the secret encrypted (services/secret_box.py), pending
# until confirmed; ``last_step`` is the last time step a code was accepted for (replay).
totp_factors = Table(
    "totp_factors",
    metadata,
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("secret_box", LargeBinary(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime, nullable=True),
    Column("last_step", BigInteger, nullable=True),
)

# Single-use recovery codes: a salted SHA-256 of each.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("salt", LargeBinary(16), nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
# What administrators did (domain/audit.py). People are named by id only: usernames are
# joined in when read, so an erased account leaves nothing but its id here.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("via", String(8), nullable=False),
    Column("actor_id", BigInteger, nullable=True),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=True),
    Column("target_id", BigInteger, nullable=True),
    Column("details", JSON, nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("ip", String(64), nullable=True),
)
Index("ix_audit_log_actor_id_id", audit_log.c.actor_id, audit_log.c.id)
Index("ix_audit_log_action_id", audit_log.c.action, audit_log.c.id)
Index("ix_audit_log_target_id_id", audit_log.c.target_id, audit_log.c.id)

# Identities at OpenID Connect providers (docs/identity.md): one account each.
federated_identities = Table(
    "federated_identities",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("email", String(254), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
)

# WebAuthn credentials: the COSE public key and the authenticator's signature counter.
passkeys = Table(
    "passkeys",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("credential_id", LargeBinary(1023), nullable=False, unique=True),
    Column("public_key", LargeBinary(1024), nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("name", String(64), nullable=False),
    Column("transports", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
)

# The single-use, short-lived challenges of sign-in ceremonies (an OpenID state, the
# code a browser trades for tokens, a WebAuthn challenge), by their SHA-256 only. Unlike
# one_time_tokens, most have no account yet.
auth_challenges = Table(
    "auth_challenges",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("purpose", String(24), nullable=False),
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("data", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("used_at", UtcDateTime, nullable=True),
)

# The outbox of domain events (domain/stream.py): one row per domain write, appended in
# the writing transaction; the relay publishes it to the stream and deletes it.
domain_events = Table(
    "domain_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("message_id", BigInteger, nullable=True),
)

# The stream itself when it is kept in the database (embedded, or no JetStream): what the
# relay published, numbered in publish order. ``id`` is unique: a relay that publishes
# again after a crash adds nothing.
_POSITION = BigInteger().with_variant(Integer(), "sqlite")
event_stream = Table(
    "event_stream",
    metadata,
    Column("position", _POSITION, primary_key=True, autoincrement=True),
    Column("id", BigInteger, nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Column("message_id", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_event_stream_type_position", event_stream.c.type, event_stream.c.position)
Index("ix_event_stream_occurred_at", event_stream.c.occurred_at)

# Leases: one holder at a time for work that must not run twice (the relay, webhooks).
leases = Table(
    "leases",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# Webhook endpoints: each reads the stream from its own position, in order.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("url", Text, nullable=False),
    Column("types", JSON, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", String(200), nullable=True),
    Column("position", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("failing_since", UtcDateTime, nullable=True),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("disabled_reason", String(64), nullable=True),
    Column("bodies", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("webhook_id", BigInteger, nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
Index(
    "ix_webhook_deliveries_webhook_id_id", webhook_deliveries.c.webhook_id, webhook_deliveries.c.id
)

# Uploads (docs/attachments.md). ``message_id`` NULL: not sent yet (purged after a day);
# ``doomed_at`` set: its message or owner is gone, nobody may read it, and the purge job
# deletes its bytes and then the row.
attachments = Table(
    "attachments",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("filename", String(255), nullable=True),
    Column("message_id", BigInteger, nullable=True),
    Column("conversation_id", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("doomed_at", UtcDateTime, nullable=True),
)
Index("ix_attachments_owner_id", attachments.c.owner_id)
Index("ix_attachments_message_id_created_at", attachments.c.message_id, attachments.c.created_at)
Index("ix_attachments_doomed_at", attachments.c.doomed_at)

# Reports of abuse (docs/moderation.md, decision 0023): ids only; the reported message is
# joined in when read. One open report per reporter and target (the partial index).
reports = Table(
    "reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("reporter_id", BigInteger, nullable=True),  # NULL: the moderation hook
    Column("target_type", String(16), nullable=False),
    Column("target_id", BigInteger, nullable=False),
    Column("target_user_id", BigInteger, nullable=True),
    Column("conversation_id", BigInteger, nullable=True),
    Column("reason", String(32), nullable=False),
    Column("note", Text, nullable=True),
    Column("rule", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("resolved_by", BigInteger, nullable=True),
    Column("action", String(32), nullable=True),
    Column("resolution_note", Text, nullable=True),
)
Index(
    "ux_reports_open_reporter_target",
    reports.c.reporter_id,
    reports.c.target_type,
    reports.c.target_id,
    unique=True,
    sqlite_where=reports.c.status == "open",
    postgresql_where=reports.c.status == "open",
)
Index("ix_reports_status_id", reports.c.status, reports.c.id)
Index("ix_reports_target_user_id", reports.c.target_user_id)
# Push targets (docs/push.md): a Web Push subscription or a push-gateway token. One row per
# endpoint (``endpoint_hash``, its SHA-256): registering it again, by anyone, moves it.
push_devices = Table(
    "push_devices",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("endpoint_hash", String(64), nullable=False, unique=True),
    Column("p256dh", String(100), nullable=True),
    Column("auth", String(32), nullable=True),
    Column("platform", String(16), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_pushed_at", UtcDateTime, nullable=True),
)
Index("ix_push_devices_user_id", push_devices.c.user_id)

# Which kinds of notification a user keeps on; no row: all on.
notification_settings = Table(
    "notification_settings",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("message", Boolean, nullable=False),
    Column("mention", Boolean, nullable=False),
    Column("reply", Boolean, nullable=False),
    Column("reaction", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The VAPID key pair (P-256) every node signs Web Push requests with.
vapid_keys = Table(
    "vapid_keys",
    metadata,
    Column("kid", String(32), primary_key=True),
    Column("private_key_pem", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Where a stream consumer of the cluster (the notifier) has read to.
stream_consumers = Table(
    "stream_consumers",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# Each user's precomputed "people you may know" (decision 0028): a msgpack list of
# (user id, mutual count, score), best first; the refresher recomputes a list once
# ``due_at`` has passed (a change to the user's own edges sets it to then).
suggestion_lists = Table(
    "suggestion_lists",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("candidates", LargeBinary, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
)
Index("ix_suggestion_lists_due_at", suggestion_lists.c.due_at)
