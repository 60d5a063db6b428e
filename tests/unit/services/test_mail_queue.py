"""The mail queue: after-commit delivery that retries while the server is down, drops
what is refused or too old, and never blocks on one bad mail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from socius.domain.mail import Mail, MailRejected, MailUnavailable
from socius.services.mail_queue import MailQueue, duration_text


class FakeMailer:
    def __init__(self, failures: dict[str, list[Exception]]) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.tries: list[str] = []

    async def send(self, mail: Mail) -> None:
        self.tries.append(mail.to)
        planned = self.failures.get(mail.to)
        if planned:
            raise planned.pop(0)
        self.sent.append(mail.to)

    async def close(self) -> None:
        return None


def mail(to: str) -> Mail:
    return Mail(to=to, template="verify_email", values={"link": "secret"})


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (polls a fake; no event to wait on)
            await asyncio.sleep(0.01)


async def test_a_deferred_mail_is_retried_while_the_others_go_on() -> None:
    mailer = FakeMailer({"slow@x.org": [MailUnavailable("down")]})
    results: list[str] = []
    queue = MailQueue(mailer, retry_seconds=60, on_result=results.append)
    await queue.start()
    try:
        queue.send_later(mail("slow@x.org"))
        queue.send_later(mail("fast@x.org"))
        await until(lambda: len(mailer.sent) == 2)
    finally:
        await queue.stop()
    assert mailer.sent == ["fast@x.org", "slow@x.org"]  # the first waited for its retry
    assert sorted(results) == ["retried", "sent", "sent"]


async def test_refused_and_too_old_mails_are_dropped() -> None:
    mailer = FakeMailer(
        {
            "refused@x.org": [MailRejected("550 no such user")],
            "down@x.org": [MailUnavailable("down")] * 10,
        }
    )
    results: list[str] = []
    queue = MailQueue(mailer, retry_seconds=1.5, on_result=results.append)
    await queue.start()
    try:
        queue.send_later(mail("refused@x.org"))
        queue.send_later(mail("down@x.org"))
        await until(lambda: "dropped" in results)
    finally:
        await queue.stop()
    assert mailer.sent == []
    assert results.count("rejected") == 1
    assert mailer.tries.count("refused@x.org") == 1
    assert 1 <= mailer.tries.count("down@x.org") <= 2  # 1 s, then 2 s is past the budget


async def test_jobs_run_in_order_and_a_failing_job_does_not_stop_the_queue() -> None:
    mailer = FakeMailer({})
    queue = MailQueue(mailer, retry_seconds=60)

    async def broken() -> list[Mail]:
        raise RuntimeError("a bug")

    async def two() -> list[Mail]:
        return [mail("a@x.org"), mail("b@x.org")]

    await queue.start()
    try:
        queue.run_later(broken)
        queue.run_later(two)
        queue.send_later(mail("c@x.org"))
        await until(lambda: len(mailer.sent) == 3)
    finally:
        await queue.stop()
    assert mailer.sent == ["a@x.org", "b@x.org", "c@x.org"]


async def test_a_full_queue_drops_new_mails() -> None:
    results: list[str] = []
    queue = MailQueue(FakeMailer({}), retry_seconds=60, max_queued=2, on_result=results.append)
    for n in range(3):  # not started: nothing is taken off
        queue.send_later(mail(f"{n}@x.org"))
    assert results == ["dropped"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1800, "30 minutes"),
        (60, "1 minute"),
        (172800, "2 days"),
        (3600, "1 hour"),
        (90, "90 seconds"),
    ],
)
def test_durations_read_as_people_say_them(seconds: int, text: str) -> None:
    assert duration_text(seconds) == text
