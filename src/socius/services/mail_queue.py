"""Mail goes out after commit, in the background, and never fails a request.

``send_later`` queues a mail (call it from an after-commit callback); ``run_later``
queues a job that makes its mails itself (a password reset request answers at once and
does its look-up here, so its timing says nothing). One task sends them in order. A
mail the server cannot take now (``MailUnavailable``: down, timing out, a 4xx) is retried
with a growing delay (1 s, 2, 4, ... at most 5 min apart) for ``retry_seconds``, while
the mails behind it go on; then it is dropped. A refused one (``MailRejected``) is
dropped at once. Every outcome is logged (never a mail's values) and counted.

The queue is in memory, bounded (``max_queued``; past it new mails are dropped and
logged): mails still queued when the process stops are lost. Everything mailed here can
be asked for again (a new link), so best effort is the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from socius.domain.mail import Mail, MailRejected, MailUnavailable
from socius.services.ports import Mailer, UnitOfWork

__all__ = ["MailJob", "MailQueue", "duration_text", "send_after_commit", "when_text"]

log = structlog.get_logger("socius.mail")

MailJob = Callable[[], Awaitable[Sequence[Mail]]]
_MAX_DELAY = 300.0
_STOP_GRACE = 5.0


@dataclass(order=True, slots=True)
class _Retry:
    due: float
    seq: int
    mail: Mail = field(compare=False)
    first_try: float = field(compare=False)
    attempt: int = field(compare=False)


class MailQueue:
    def __init__(
        self,
        mailer: Mailer,
        *,
        retry_seconds: float,
        max_queued: int = 1000,
        on_result: Callable[[str], None] = lambda _result: None,
    ) -> None:
        self._mailer = mailer
        self._retry_seconds = retry_seconds
        self._queue: asyncio.Queue[Mail | MailJob] = asyncio.Queue(max_queued)
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._on_result = on_result
        self._task: asyncio.Task[None] | None = None

    def send_later(self, mail: Mail) -> None:
        self._put(mail)

    def run_later(self, job: MailJob) -> None:
        self._put(job)

    def _put(self, item: Mail | MailJob) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.error("mail queue full: mail dropped", queued=self._queue.qsize())
            self._on_result("dropped")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="socius-mail-queue")

    async def stop(self) -> None:
        """Give what is queued a few seconds to go out, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), _STOP_GRACE)
        task.cancel()
        # Not ``suppress(CancelledError)``: that would also swallow a cancel of this stop.
        await asyncio.gather(task, return_exceptions=True)
        if self._queue.qsize() or self._retries:
            log.warning(
                "mail queue stopped with mails unsent",
                queued=self._queue.qsize(),
                retrying=len(self._retries),
            )

    async def _run(self) -> None:
        while True:
            item = await self._next()
            if item is not None:
                try:
                    await self._handle(item)
                finally:
                    self._queue.task_done()
            while self._retries and self._retries[0].due <= time.monotonic():
                retry = heapq.heappop(self._retries)
                await self._try(retry.mail, retry.first_try, retry.attempt)

    async def _next(self) -> Mail | MailJob | None:
        if not self._retries:
            return await self._queue.get()
        wait = max(0.0, self._retries[0].due - time.monotonic())
        try:
            return await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return None

    async def _handle(self, item: Mail | MailJob) -> None:
        if isinstance(item, Mail):
            await self._try(item, time.monotonic(), 0)
            return
        try:
            mails = await item()
        except Exception:  # a job's failure is its own (logged); the queue goes on
            log.exception("mail job failed")
            return
        for mail in mails:
            await self._try(mail, time.monotonic(), 0)

    async def _try(self, mail: Mail, first_try: float, attempt: int) -> None:
        try:
            await self._mailer.send(mail)
        except MailUnavailable as exc:
            now = time.monotonic()
            delay = min(2.0**attempt, _MAX_DELAY)
            if now + delay - first_try > self._retry_seconds:
                log.error("mail dropped: the server did not take it in time", **_about(mail))
                self._on_result("dropped")
                return
            log.warning("mail deferred", reason=str(exc), retry_in=delay, **_about(mail))
            self._on_result("retried")
            heapq.heappush(
                self._retries, _Retry(now + delay, next(self._seq), mail, first_try, attempt + 1)
            )
        except MailRejected as exc:
            log.error("mail rejected", reason=str(exc), **_about(mail))
            self._on_result("rejected")
        except Exception:  # a bug (a broken template): log it, keep the queue going
            log.exception("mail failed", **_about(mail))
            self._on_result("dropped")
        else:
            self._on_result("sent")


def _about(mail: Mail) -> dict[str, str]:
    """What a log line may say about a mail: its template and the recipient's domain."""
    return {"template": mail.template, "to_domain": mail.to.rpartition("@")[2]}


def send_after_commit(queue: MailQueue, uow: UnitOfWork, *mails: Mail | None) -> None:
    """Queue ``mails`` (None ones are skipped) once ``uow`` has committed."""
    ready = [m for m in mails if m is not None]
    if not ready:
        return

    async def queue_them() -> None:
        for mail in ready:
            queue.send_later(mail)

    uow.after_commit(queue_them)


def duration_text(seconds: int) -> str:
    """``30 minutes``, ``48 hours``, ``2 days``: how long a link works, for a mail."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def when_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
