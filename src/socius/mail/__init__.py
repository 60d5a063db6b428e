"""Outbound mail adapters (the ``Mailer`` port): SMTP, an outbox folder, or a log line.

They import only the domain. ``templates.py`` renders a ``Mail`` (packaged templates,
overridable from a folder); ``message.py`` makes the MIME message both senders deliver.
"""

from socius.mail.files import OutboxMailer
from socius.mail.logged import LogOnlyMailer
from socius.mail.smtp import SmtpMailer
from socius.mail.templates import Rendered, Templates

__all__ = ["LogOnlyMailer", "OutboxMailer", "Rendered", "SmtpMailer", "Templates"]
