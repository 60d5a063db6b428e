"""The moderation hook's rules and budget (services/moderation.py), in isolation."""

from __future__ import annotations

import asyncio

import pytest

from socius.domain.errors import InvalidInput
from socius.domain.ids import EPOCH_MS, IdGenerator, id_timestamp_ms
from socius.domain.reports import Decision, ReportReason, Verdict
from socius.services.moderation import LinkSpam, MessageDraft, Moderation, WordList

SENDER = IdGenerator(1).next_id()


def draft(body: str, sender: int = SENDER) -> MessageDraft:
    return MessageDraft(sender, 1, body)


def test_words_are_whole_and_any_case_and_patterns_are_searched() -> None:
    rule = WordList(["spam", "two words"], [r"fr[e3]{2}\s+money"], Decision.REJECT)
    assert rule.judge(draft("SPAM!")) == Verdict(Decision.REJECT, "words")
    assert rule.judge(draft("say two words")) is not None
    assert rule.judge(draft("fr33   money")) is not None
    assert rule.judge(draft("two-words, two\n words")) is not None  # any gap
    for fine in ("spammy", "antispam", "twowords", "free"):
        assert rule.judge(draft(fine)) is None, fine
    assert WordList([" ", ""], [], Decision.FLAG).empty


def test_links_count_and_new_accounts() -> None:
    born = id_timestamp_ms(SENDER)
    many = LinkSpam(max_links=2, new_account_seconds=0, decision=Decision.FLAG)
    assert many.judge(draft("a https://a.b www.c.d")) is None
    found = many.judge(draft("https://a.b http://c.d/e www.f.g"))
    assert found == Verdict(Decision.FLAG, "links", ReportReason.SPAM)
    young = LinkSpam(
        max_links=0, new_account_seconds=60, decision=Decision.REJECT, now_ms=lambda: born + 59_000
    )
    assert young.judge(draft("see https://x.y")) is not None
    assert young.judge(draft("no link here")) is None
    old = LinkSpam(
        max_links=0, new_account_seconds=60, decision=Decision.REJECT, now_ms=lambda: born + 61_000
    )
    assert old.judge(draft("see https://x.y")) is None
    assert born > EPOCH_MS


class Answer:
    def __init__(self, verdict: Verdict, delay: float = 0.0, error: bool = False) -> None:
        self.verdict, self.delay, self.error, self.calls = verdict, delay, error, 0

    async def classify(self, d: MessageDraft) -> Verdict:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error:
            raise RuntimeError("down")
        return self.verdict


async def test_the_strictest_decision_wins_and_a_reject_raises() -> None:
    flags = WordList(["meh"], [], Decision.FLAG)
    model = Answer(Verdict(Decision.REJECT, "model"))
    with pytest.raises(InvalidInput) as info:
        await Moderation([flags], model).judge(draft("meh"))
    assert (info.value.code, info.value.details) == ("message_rejected", {"rule": "model"})
    allow = Answer(Verdict.allow())
    assert (await Moderation([flags], allow).judge(draft("meh"))).rule == "words"
    # A built-in reject never asks the classifier.
    rejects = WordList(["no"], [], Decision.REJECT)
    with pytest.raises(InvalidInput):
        await Moderation([rejects], allow).judge(draft("no"))
    assert allow.calls == 1


async def test_slow_or_failing_classifiers_fail_open_and_are_counted() -> None:
    failures: list[str] = []
    slow = Moderation(
        [],
        Answer(Verdict(Decision.REJECT), delay=30),
        budget_seconds=0.01,
        on_failure=failures.append,
    )
    assert (await slow.judge(draft("x"))).decision is Decision.ALLOW
    broken = Moderation([], Answer(Verdict.allow(), error=True), on_failure=failures.append)
    assert (await broken.judge(draft("x"))).decision is Decision.ALLOW
    assert failures == ["timeout", "error"]
