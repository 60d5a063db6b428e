"""The services of one running app, as bootstrap wired them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from socius.services.accounts import AccountService
from socius.services.admin import AdminService
from socius.services.attachments import AttachmentService
from socius.services.auth import AuthService
from socius.services.delivery import Delivery
from socius.services.email_verification import EmailVerification
from socius.services.events import DomainEvents
from socius.services.graph import GraphService
from socius.services.inbox import InboxService
from socius.services.mail_queue import MailQueue
from socius.services.messaging import MessagingService
from socius.services.mfa import MfaService
from socius.services.notifier import Notifier
from socius.services.oidc import OidcService
from socius.services.passkeys import PasskeyService
from socius.services.password_reset import PasswordResets
from socius.services.profiles import ProfileService
from socius.services.push import PushService
from socius.services.relay import Relay
from socius.services.reports import ReportService
from socius.services.retention import LogRetention
from socius.services.revocation import Revocations
from socius.services.search import SearchService
from socius.services.suggestions import SuggestionRefresher, SuggestionService
from socius.services.threads import ThreadService
from socius.services.tokens import AccessTokens
from socius.services.webhooks import WebhookService
from socius.settings import Settings

if TYPE_CHECKING:
    from socius.realtime import Realtime

__all__ = ["Container"]

Check = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Container:
    settings: Settings
    auth: AuthService
    accounts: AccountService
    profiles: ProfileService
    graph: GraphService
    suggestions: SuggestionService
    messaging: MessagingService
    attachments: AttachmentService
    search: SearchService
    inbox: InboxService
    delivery: Delivery
    tokens: AccessTokens
    revocations: Revocations
    retention: LogRetention
    mail: MailQueue
    verification: EmailVerification
    password_resets: PasswordResets
    mfa: MfaService
    admin: AdminService
    oidc: OidcService
    passkeys: PasskeyService
    events: DomainEvents
    relay: Relay
    webhooks: WebhookService
    reports: ReportService
    threads: ThreadService
    push: PushService
    notifier: Notifier
    refresher: SuggestionRefresher
    realtime: Realtime | None = None  # the WebSocket gateway and presence (bootstrap)
    readiness: dict[str, Check] = field(default_factory=dict)
    on_start: list[Check] = field(default_factory=list)
    on_stop: list[Check] = field(default_factory=list)
