"""Settings: the only place that reads the environment.

Values come, lowest precedence first, from the defaults below, an optional TOML file
(``SOCIUS_CONFIG_FILE``, keys as the field names), and ``SOCIUS_<FIELD>`` environment
variables. A bad value fails at start with a message that names the setting.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from socius.domain.attachments import DEFAULT_ALLOWED_TYPES

__all__ = ["OidcProvider", "Settings", "SettingsError", "decode_key", "load_settings"]

ENV_PREFIX = "SOCIUS_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class OidcProvider(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One OpenID Connect provider (docs/identity.md#sign-in-with-openid-connect)."""

    issuer: str  # https://accounts.example.com: discovery is at <issuer>/.well-known/...
    client_id: str
    client_secret: str = ""  # empty: a public client (PKCE only)
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])
    display_name: str = ""  # the button's label; empty: the provider's name


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every knob socius has. Field ``foo`` is set by ``SOCIUS_FOO``."""

    # where and how to serve
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 0  # 0: one per core with a shared Redis, else 1 (effective_workers)
    public_url: str = ""
    data_dir: str = "./socius-data"
    node_id: int = -1  # 0..1023; -1 derives one from the process id

    # persistence
    database_url: str = ""  # empty: sqlite file in data_dir
    database_replica_urls: list[str] = []
    database_pool_size: int = 20
    database_echo: bool = False
    auto_migrate: bool = True
    redis_url: str = ""  # empty: in-process cache, rate limits and revocations
    redis_prefix: str = "socius:"
    nats_url: str = ""
    # node memory fed by the bus (docs/decisions/0016): revocations and the L1 cache
    bus_heartbeat_seconds: float = 1.0  # silent for 3x this: fall back to Redis/database
    l1_cache_entries: int = 50_000  # hot profiles, own users, list heads per node; 0: off
    l1_cache_ttl_seconds: float = 10.0  # bounds what a lost invalidation could leave

    # identity
    jwt_issuer: str = "socius"
    jwt_audience: str = "socius-api"
    access_token_ttl_seconds: int = 900
    session_max_age_seconds: int = 30 * 24 * 3600
    signing_key_refresh_seconds: int = 60
    argon2_memory_kib: int = 65536
    argon2_time_cost: int = 3
    argon2_parallelism: int = 1
    login_max_failures_per_ip_and_account: int = 5
    login_max_failures_per_ip: int = 30
    login_max_failures_per_account: int = 100  # from every address: then backoff
    login_failure_window_seconds: int = 900
    login_account_backoff_seconds: int = 1
    login_account_backoff_max_seconds: int = 60
    register_max_per_ip_per_hour: int = 100
    trust_forwarded_for: bool = False
    refresh_grace_seconds: int = 20

    # mail (docs/identity.md): empty smtp_url writes mails to data_dir/outbox (embedded)
    smtp_url: str = ""  # smtp:// (STARTTLS required), smtps:// (TLS), smtp+insecure://
    smtp_ca_file: str = ""  # extra CA certificates (PEM) to trust for the SMTP server
    smtp_timeout_seconds: int = 30
    mail_from: str = "socius <no-reply@localhost>"
    mail_templates_dir: str = ""  # a template here overrides the packaged one of its name
    mail_retry_seconds: int = 900  # keep retrying a mail this long while SMTP is down
    verify_email_link: str = "{public_url}/#verify-email={token}"
    password_reset_link: str = "{public_url}/#reset-password={token}"  # noqa: S105

    # email verification, password reset, second factor
    require_verified_email: bool = False  # login refused (403) until the email is verified
    email_verification_ttl_seconds: int = 48 * 3600
    verify_email_max_per_hour: int = 5  # verification mails one account may ask for
    password_reset_ttl_seconds: int = 1800
    password_reset_max_per_address_per_hour: int = 5
    password_reset_max_per_ip_per_hour: int = 20
    mfa_encryption_key: str = ""  # 32 bytes, base64; embedded: generated in data_dir
    mfa_encryption_old_keys: list[str] = []  # still decrypt (rotation), never encrypt
    app_name: str = "socius"  # in mails, and the issuer authenticator apps show
    mfa_login_ttl_seconds: int = 300
    mfa_max_failures_per_account: int = 10  # per login_failure_window_seconds

    # sign-in with OpenID Connect providers and passkeys (docs/identity.md)
    oidc_providers: dict[str, OidcProvider] = {}  # by name; env: JSON
    oidc_return_urls: list[str] = []  # where a callback may send the browser besides public_url
    oidc_state_ttl_seconds: int = 600  # how long a sign-in at the provider may take
    oidc_exchange_ttl_seconds: int = 120  # the one-time code the app trades for tokens
    oidc_http_timeout_seconds: int = 10
    webauthn_rp_id: str = ""  # empty: the host of public_url
    webauthn_rp_name: str = ""  # empty: app_name
    webauthn_origins: list[str] = []  # empty: the origin of public_url
    passkey_challenge_ttl_seconds: int = 300
    sign_in_starts_max_per_ip_per_minute: int = 60  # provider and passkey ceremonies begun

    # abuse limits, per user: N actions, then one more every seconds/N (0 turns one off)
    limit_messages: int = 50
    limit_messages_seconds: int = 10
    limit_typing: int = 30
    limit_typing_seconds: int = 10
    limit_friend_requests: int = 50
    limit_friend_requests_seconds: int = 3600
    limit_groups: int = 20
    limit_groups_seconds: int = 3600
    limit_uploads: int = 60
    limit_uploads_seconds: int = 600
    limit_reports: int = 20
    limit_reports_seconds: int = 3600
    ws_max_connections_per_user: int = 20  # 0: no cap

    # group commit of sends (decision 0011): concurrent sends share one transaction
    send_group_max: int = 128  # sends per transaction at most
    send_group_window_ms: float = 2.0  # an idle server waits this long for more sends
    # groups committing at once per process (decisions 0055, 0060; PostgreSQL only:
    # SQLite has one writer, so there it is always 1). Groups in flight at once take no
    # conversation another holds. 2: a group's statements overlap the other's commit
    # (W2: +30% accepted, delivery p99 about halved against 1, decision 0060); 4 measured
    # slower (0055: smaller groups, lock waits on the log counters)
    send_groups_in_flight: int = 2

    # moderation (docs/moderation.md): the hook before a message is stored
    moderation_blocked_words: list[str] = []  # whole words, any case
    moderation_blocked_patterns: list[str] = []  # Python regular expressions (searched)
    moderation_words_action: Literal["reject", "flag"] = "reject"
    moderation_max_links: int = 0  # more links than this in one message: links_action; 0 off
    moderation_new_account_seconds: int = 0  # any link from an account this young; 0 off
    moderation_links_action: Literal["reject", "flag"] = "flag"
    moderation_classifier: str = ""  # module:factory making a MessageClassifier; empty: none
    moderation_classifier_budget_ms: int = 50  # past it the message goes ahead (fail open)

    # operations
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    access_log_sample_rate: float = 1.0  # share of ordinary requests logged; errors, slow: all
    access_log_slow_ms: int = 500  # a request at least this slow is always logged
    otlp_endpoint: str = ""
    gc_freeze: bool = True  # gc.freeze() once the app is built: start-up objects never scanned
    gc_gen0_threshold: int = 20_000  # allocations between young collections; 0: Python's own
    max_body_bytes: int = 64 * 1024

    # attachments (docs/attachments.md)
    blob_url: str = ""  # empty: files in data_dir/blobs; file:///dir; s3://bucket[/prefix]
    blob_s3_endpoint: str = ""  # e.g. http://127.0.0.1:8333; empty: AWS (by region)
    blob_s3_public_endpoint: str = ""  # in presigned URLs, when clients reach it elsewhere
    blob_s3_region: str = "us-east-1"
    blob_s3_access_key: str = ""
    blob_s3_secret_key: str = ""
    blob_s3_virtual_host: bool = False  # bucket.host/key rather than host/bucket/key
    blob_presign_seconds: int = 300  # lifetime of presigned download URLs (S3 only)
    upload_max_bytes: int = 25 * 1024 * 1024
    upload_allowed_types: list[str] = msgspec.field(
        default_factory=lambda: [*DEFAULT_ALLOWED_TYPES]
    )
    upload_unsent_ttl_seconds: int = 24 * 3600  # uploads never sent are purged after it

    # message search (docs/search.md)
    search_language: str = "simple"  # PostgreSQL text search configuration, e.g. english

    # retention
    event_log_retention_seconds: int = 30 * 24 * 3600  # 0 keeps every event for ever

    # the durable event stream and webhooks (docs/events.md)
    event_stream: Literal["auto", "database", "jetstream"] = "auto"  # auto: JetStream with NATS
    event_stream_name: str = "SOCIUS_EVENTS"
    event_subject_prefix: str = "socius.events."
    event_stream_max_age_seconds: int = 0  # JetStream's max_age; 0 keeps events for ever
    event_duplicate_window_seconds: int = 300  # JetStream de-duplication window
    event_relay_lease_seconds: int = 15
    event_relay_in_server: bool = True  # false: only `socius worker` / `events relay` relay
    webhook_allow_private: bool = False  # allow loopback/private/link-local destinations
    webhook_timeout_seconds: float = 10.0
    webhook_max_response_bytes: int = 64 * 1024
    webhook_give_up_seconds: int = 24 * 3600  # failing this long: the endpoint is disabled
    # suggestions, precomputed off the request path (docs/design.md, decision 0028)
    suggestions_max_age_seconds: int = 3600  # every stored list is recomputed this often
    suggestions_refresh_per_second: float = 20.0  # the refresher's budget, lists a second
    # SQLite: the most of the server's event loop the refresher's recomputations take (the
    # statements run on it; decision 0048); 0: the count budget alone
    suggestions_refresh_cpu_share: float = 0.05
    # a user's very first request: "queue" the list (an empty answer; the refresher
    # computes it next) or "compute" it then, once (decision 0028 measured both)
    suggestions_first_request: Literal["compute", "queue"] = "queue"
    # notifications and push (docs/push.md)
    push_gateway_url: str = ""  # the operator's push gateway (APNs/FCM relay); "" = none
    push_gateway_secret: str = ""  # sent as "Authorization: Bearer" to the gateway
    push_vapid_subject: str = "mailto:admin@localhost"  # VAPID "sub": a contact for push services
    push_allow_private: bool = False  # http and loopback/private Web Push endpoints (tests, dev)
    push_attempts: int = 5  # tries per push (5xx, 429, no answer) before giving up
    push_retry_base_seconds: float = 1.0  # back-off before the 2nd try, doubling after
    push_ttl_seconds: int = 24 * 3600  # how long a push service keeps an undelivered push
    push_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (1 <= self.port <= 65535, "port", "must be 1..65535"),
            (0 <= self.workers <= 256, "workers", "must be 0..256 (0: automatic)"),
            (
                0.0 <= self.access_log_sample_rate <= 1.0,
                "access_log_sample_rate",
                "must be 0..1",
            ),
            (self.access_log_slow_ms >= 0, "access_log_slow_ms", "must be >= 0"),
            (self.gc_gen0_threshold >= 0, "gc_gen0_threshold", "must be >= 0"),
            (-1 <= self.node_id <= 1023, "node_id", "must be 0..1023 (or -1 for automatic)"),
            (self.database_pool_size >= 1, "database_pool_size", "must be >= 1"),
            (
                0.05 <= self.bus_heartbeat_seconds <= 60,
                "bus_heartbeat_seconds",
                "must be 0.05..60",
            ),
            (self.l1_cache_entries >= 0, "l1_cache_entries", "must be >= 0 (0 turns it off)"),
            (
                0 < self.l1_cache_ttl_seconds <= 3600,
                "l1_cache_ttl_seconds",
                "must be > 0 and <= 3600",
            ),
            (self.access_token_ttl_seconds >= 30, "access_token_ttl_seconds", "must be >= 30"),
            (self.session_max_age_seconds >= 60, "session_max_age_seconds", "must be >= 60"),
            (self.argon2_memory_kib >= 1024, "argon2_memory_kib", "must be >= 1024"),
            (self.argon2_time_cost >= 1, "argon2_time_cost", "must be >= 1"),
            (self.argon2_parallelism >= 1, "argon2_parallelism", "must be >= 1"),
            (self.max_body_bytes >= 1024, "max_body_bytes", "must be >= 1024"),
            (1 <= self.send_group_max <= 1000, "send_group_max", "must be 1..1000"),
            (1 <= self.send_groups_in_flight <= 64, "send_groups_in_flight", "must be 1..64"),
            (
                0 <= self.send_group_window_ms <= 100,
                "send_group_window_ms",
                "must be 0..100",
            ),
            (
                self.event_log_retention_seconds >= 0,
                "event_log_retention_seconds",
                "must be >= 0 (0 keeps events for ever)",
            ),
            (
                self.suggestions_max_age_seconds >= 1,
                "suggestions_max_age_seconds",
                "must be >= 1",
            ),
            (
                self.suggestions_refresh_per_second > 0,
                "suggestions_refresh_per_second",
                "must be > 0",
            ),
            (
                0 <= self.suggestions_refresh_cpu_share <= 1,
                "suggestions_refresh_cpu_share",
                "must be 0..1",
            ),
            (
                1 <= self.event_relay_lease_seconds <= 3600,
                "event_relay_lease_seconds",
                "must be 1..3600",
            ),
            (
                self.event_duplicate_window_seconds >= 2 * self.event_relay_lease_seconds + 10,
                "event_duplicate_window_seconds",
                "must be >= 2 * SOCIUS_EVENT_RELAY_LEASE_SECONDS + 10 (a relay that takes "
                "over republishes within it)",
            ),
            (
                self.event_stream_max_age_seconds >= 0,
                "event_stream_max_age_seconds",
                "must be >= 0",
            ),
            (
                self.event_subject_prefix.endswith(".") and " " not in self.event_subject_prefix,
                "event_subject_prefix",
                "must end with a dot and hold no spaces",
            ),
            (
                self.event_stream != "jetstream" or bool(self.nats_url),
                "event_stream",
                "jetstream needs SOCIUS_NATS_URL",
            ),
            (
                0 < self.webhook_timeout_seconds <= 60,
                "webhook_timeout_seconds",
                "must be in (0, 60]",
            ),
            (self.webhook_max_response_bytes >= 0, "webhook_max_response_bytes", "must be >= 0"),
            (self.webhook_give_up_seconds >= 60, "webhook_give_up_seconds", "must be >= 60"),
            (1 <= self.push_attempts <= 20, "push_attempts", "must be 1..20"),
            (
                0 < self.push_retry_base_seconds <= 3600,
                "push_retry_base_seconds",
                "must be in (0, 3600]",
            ),
            (
                0 <= self.push_ttl_seconds <= 28 * 24 * 3600,
                "push_ttl_seconds",
                "must be 0..28 days",
            ),
            (0 < self.push_timeout_seconds <= 60, "push_timeout_seconds", "must be in (0, 60]"),
            (
                self.push_vapid_subject.startswith(("mailto:", "https://")),
                "push_vapid_subject",
                "must be a mailto: or https: URL",
            ),
            (
                0 <= self.refresh_grace_seconds <= 300,
                "refresh_grace_seconds",
                "must be 0..300",
            ),
            (
                1 <= self.login_account_backoff_seconds <= self.login_account_backoff_max_seconds,
                "login_account_backoff_seconds",
                "must be 1..SOCIUS_LOGIN_ACCOUNT_BACKOFF_MAX_SECONDS",
            ),
            (self.ws_max_connections_per_user >= 0, "ws_max_connections_per_user", "must be >= 0"),
            (
                self.smtp_url == "" or _scheme(self.smtp_url) in {"smtp", "smtps", "smtp+insecure"},
                "smtp_url",
                "must start with smtp://, smtps:// or smtp+insecure://",
            ),
            (
                "{token}" in self.verify_email_link,
                "verify_email_link",
                "must contain {token}",
            ),
            (
                "{token}" in self.password_reset_link,
                "password_reset_link",
                "must contain {token}",
            ),
            (
                60 <= self.password_reset_ttl_seconds <= 24 * 3600,
                "password_reset_ttl_seconds",
                "must be 60..86400",
            ),
            (
                30 <= self.mfa_login_ttl_seconds <= 3600,
                "mfa_login_ttl_seconds",
                "must be 30..3600",
            ),
            (
                self.database_url == "" or _scheme(self.database_url) in _DB_SCHEMES,
                "database_url",
                "must start with sqlite:// or postgresql://",
            ),
            (
                self.redis_url == "" or _scheme(self.redis_url) in {"redis", "rediss", "unix"},
                "redis_url",
                "must start with redis://, rediss:// or unix://",
            ),
            (
                self.nats_url == "" or _scheme(self.nats_url) in {"nats", "tls"},
                "nats_url",
                "must start with nats:// or tls://",
            ),
        ]
        checks += [
            (
                self.blob_url == "" or _scheme(self.blob_url) in {"file", "s3"},
                "blob_url",
                "must start with file:// or s3://",
            ),
            (
                _scheme(self.blob_url) != "s3"
                or bool(self.blob_s3_access_key and self.blob_s3_secret_key),
                "blob_s3_access_key",
                "an s3:// SOCIUS_BLOB_URL needs SOCIUS_BLOB_S3_ACCESS_KEY and _SECRET_KEY",
            ),
            (
                1 <= self.upload_max_bytes <= 5 * 1024**3,
                "upload_max_bytes",
                "must be 1..5368709120 (5 GiB, one S3 PUT)",
            ),
            (
                60 <= self.blob_presign_seconds <= 7 * 24 * 3600 or self.blob_presign_seconds == 0,
                "blob_presign_seconds",
                "must be 60..604800, or 0 for no presigned URLs",
            ),
            (self.upload_unsent_ttl_seconds >= 60, "upload_unsent_ttl_seconds", "must be >= 60"),
            (
                re.fullmatch(r"[a-z][a-z_]{0,62}", self.search_language) is not None,
                "search_language",
                "must name a PostgreSQL text search configuration (simple, english, ...)",
            ),
        ]
        key_why = "must be 32 random bytes in base64 (`openssl rand -base64 32` makes one)"
        checks += [
            (
                self.mfa_encryption_key == "" or _is_key(self.mfa_encryption_key),
                "mfa_encryption_key",
                key_why,
            ),
            (all(map(_is_key, self.mfa_encryption_old_keys)), "mfa_encryption_old_keys", key_why),
        ]
        checks += [
            (_scheme(url) in _DB_SCHEMES, "database_replica_urls", "must be database URLs")
            for url in self.database_replica_urls
        ]
        checks += [
            (getattr(self, name) >= 1, name, "must be >= 1")
            for name in (
                "login_max_failures_per_ip_and_account",
                "login_max_failures_per_ip",
                "login_max_failures_per_account",
                "login_failure_window_seconds",
                "smtp_timeout_seconds",
                "mail_retry_seconds",
                "email_verification_ttl_seconds",
                "verify_email_max_per_hour",
                "password_reset_max_per_address_per_hour",
                "password_reset_max_per_ip_per_hour",
                "mfa_max_failures_per_account",
                "oidc_state_ttl_seconds",
                "oidc_exchange_ttl_seconds",
                "oidc_http_timeout_seconds",
                "passkey_challenge_ttl_seconds",
                "sign_in_starts_max_per_ip_per_minute",
            )
        ]
        checks += [
            (getattr(self, name) >= 0 and getattr(self, f"{name}_seconds") >= 1, name, why)
            for name in _USER_LIMITS
            for why in [f"must be >= 0, and {ENV_PREFIX}{name.upper()}_SECONDS >= 1"]
        ]
        checks += self._moderation_checks()
        for name, provider in self.oidc_providers.items():
            checks += [
                (
                    _PROVIDER_NAME.fullmatch(name) is not None,
                    "oidc_providers",
                    f"{name!r}: a name is 1-32 of a-z, 0-9, _ and - (it is in URLs)",
                ),
                (
                    _is_secure_url(provider.issuer),
                    "oidc_providers",
                    f"{name}: issuer must be an https:// URL (http:// only on a loopback address)",
                ),
                (bool(provider.client_id), "oidc_providers", f"{name}: client_id is required"),
                ("openid" in provider.scopes, "oidc_providers", f"{name}: scopes need openid"),
            ]
        for ok, name, why in checks:
            if not ok:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()}: {why}")

    def _moderation_checks(self) -> list[tuple[bool, str, str]]:
        checks: list[tuple[bool, str, str]] = [
            (self.moderation_max_links >= 0, "moderation_max_links", "must be >= 0 (0: off)"),
            (
                self.moderation_new_account_seconds >= 0,
                "moderation_new_account_seconds",
                "must be >= 0 (0: off)",
            ),
            (
                1 <= self.moderation_classifier_budget_ms <= 10_000,
                "moderation_classifier_budget_ms",
                "must be 1..10000",
            ),
            (
                not self.moderation_classifier
                or _CLASSIFIER.fullmatch(self.moderation_classifier) is not None,
                "moderation_classifier",
                f"{self.moderation_classifier!r} is not of the form package.module:factory",
            ),
        ]
        for pattern in self.moderation_blocked_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                checks.append(
                    (False, "moderation_blocked_patterns", f"{pattern!r} is not a regex: {exc}")
                )
        return checks

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'socius.db'}"

    @property
    def effective_public_url(self) -> str:
        """Where clients reach this server (links in mails): ``public_url``, or the address
        it listens on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def effective_workers(self) -> int:
        """``workers``, or when it is 0: one per core on a shared database and Redis (the
        state worker processes must share) when each process takes its own node id; one
        on embedded SQLite or with a fixed ``node_id`` (ids embed it: one process only)."""
        if self.workers:
            return self.workers
        if self.redis_url and not self.is_embedded and self.node_id < 0:
            return max(1, os.cpu_count() or 1)
        return 1

    @property
    def effective_webauthn_rp_id(self) -> str:
        """The passkeys' relying party id: ``webauthn_rp_id``, or public_url's host."""
        return self.webauthn_rp_id or (urlsplit(self.effective_public_url).hostname or "")

    @property
    def effective_webauthn_origins(self) -> list[str]:
        """The origins passkey ceremonies may come from."""
        if self.webauthn_origins:
            return [o.rstrip("/") for o in self.webauthn_origins]
        parts = urlsplit(self.effective_public_url)
        return [f"{parts.scheme}://{parts.netloc}"]

    @property
    def uses_jetstream(self) -> bool:
        """The event stream is in JetStream (else in the database)."""
        return self.event_stream == "jetstream" or (
            self.event_stream == "auto" and bool(self.nats_url)
        )

    @property
    def effective_blob_url(self) -> str:
        """The configured blob store, or files in ``data_dir/blobs``."""
        return self.blob_url or (Path(self.data_dir) / "blobs").resolve().as_uri()

    @property
    def is_embedded(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return msgspec.convert({**msgspec.structs.asdict(self), **changes}, Settings)


_CLASSIFIER = re.compile(r"[A-Za-z_][\w]*(?:[.][A-Za-z_][\w]*)*:[A-Za-z_][\w]*")
_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _is_secure_url(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


_USER_LIMITS = (
    "limit_messages",
    "limit_typing",
    "limit_friend_requests",
    "limit_groups",
    "limit_uploads",
    "limit_reports",
)
_DB_SCHEMES = {"sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg"}


def decode_key(value: str) -> bytes:
    """A key written in base64 (standard or URL-safe, padding optional); ValueError when
    it is not base64."""
    text = value.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _is_key(value: str) -> bool:
    """32 bytes in base64."""
    try:
        return len(decode_key(value)) == 32
    except ValueError:
        return False


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else ""


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    fields = {f.name: f for f in msgspec.structs.fields(Settings)}
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG_FILE":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name.startswith("test_"):
            continue  # the test suite's own variables
        if name not in fields:
            raise SettingsError(f"{key}: unknown setting")
        if fields[name].type == list[str]:
            values[name] = [part.strip() for part in raw.split(",") if part.strip()]
        elif name == "oidc_providers":  # {"name": {"issuer": ..., "client_id": ...}, ...}
            try:
                values[name] = msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise SettingsError(f"{key}: not JSON: {exc}") from exc
        else:
            values[name] = raw
    return values


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from a TOML file, the environment and explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = env.get(ENV_PREFIX + "CONFIG_FILE")
    if config_file:
        try:
            values.update(tomllib.loads(Path(config_file).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(
                f"{ENV_PREFIX}CONFIG_FILE: cannot read {config_file}: {exc}"
            ) from exc
    values.update(_from_env(env))
    values.update(overrides)
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_setting(str(exc))) from exc


def _name_the_setting(message: str) -> str:
    # msgspec says "... - at `$.port`"; turn that into SOCIUS_PORT.
    if "`$." in message:
        text, _, where = message.partition(" - at `$.")
        field = where.rstrip("`").split("[", 1)[0].split(".", 1)[0]
        return f"{ENV_PREFIX}{field.upper()}: {text}"
    if "Object contains unknown field" in message:
        field = message.split("`")[1] if "`" in message else "?"
        return f"{ENV_PREFIX}{field.upper()}: unknown setting"
    return message
