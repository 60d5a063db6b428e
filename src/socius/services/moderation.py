"""The moderation hook: before a message is stored (sent or edited), decide allow, flag or
reject (docs/moderation.md, decision 0023).

Two built-in rules run first, in microseconds and without I/O: a word/regex list and a
link-spam rule. Then, when one is configured (``moderation_classifier="module:factory"``),
a ``MessageClassifier`` (a model, a remote service) gets the draft, within a time budget:
past it, or when it raises, the message goes ahead as allowed (fail open), and the miss is
counted and logged. The strictest decision wins (reject > flag > allow).

The hook runs per request, before the send joins its group commit: a slow classifier
delays its own send only, never the group's.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from socius.domain.errors import InvalidInput
from socius.domain.ids import id_timestamp_ms
from socius.domain.reports import Decision, ReportReason, Verdict

__all__ = [
    "LinkSpam",
    "MessageClassifier",
    "MessageDraft",
    "Moderation",
    "WordList",
    "load_classifier",
    "rejected",
]

log = structlog.get_logger("socius.moderation")

_RANK = {Decision.ALLOW: 0, Decision.FLAG: 1, Decision.REJECT: 2}
_WORD = re.compile(r"\w+")
_LINK = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """A message about to be stored: what a classifier is given."""

    sender_id: int
    conversation_id: int
    body: str
    message_id: int | None = None  # set for an edit: the message being edited
    attachment_count: int = 0

    @property
    def is_edit(self) -> bool:
        return self.message_id is not None


@runtime_checkable
class MessageClassifier(Protocol):
    """A pluggable classifier (docs/moderation.md has an example). ``classify`` is
    awaited within ``moderation_classifier_budget_ms``; it must not block the event loop
    (run a CPU-bound model in a thread or another process)."""

    async def classify(self, draft: MessageDraft) -> Verdict: ...


class Rule(Protocol):
    """A built-in rule: synchronous, no I/O. None when it has nothing to say."""

    def judge(self, draft: MessageDraft) -> Verdict | None: ...


class WordList:
    """Words (whole, any case) and regular expressions that flag or reject a message.

    Single words are looked up in a set, one lookup per word of the message however long
    the list is; phrases (several words, any spacing or punctuation between them) and
    patterns are searched."""

    def __init__(self, words: Sequence[str], patterns: Sequence[str], decision: Decision) -> None:
        listed = [w.strip().casefold() for w in words if w.strip()]
        self._words = frozenset(w for w in listed if _WORD.fullmatch(w))
        phrases = [
            r"(?<!\w)" + r"\W+".join(map(re.escape, _WORD.findall(w))) + r"(?!\w)"
            for w in listed
            if not _WORD.fullmatch(w) and _WORD.search(w)
        ]
        self._patterns = [re.compile(p) for p in patterns]
        if phrases:
            self._patterns.append(re.compile("|".join(phrases), re.IGNORECASE))
        self._verdict = Verdict(decision, "words", ReportReason.OTHER)

    @property
    def empty(self) -> bool:
        return not self._words and not self._patterns

    def judge(self, draft: MessageDraft) -> Verdict | None:
        if self._words and not self._words.isdisjoint(_WORD.findall(draft.body.casefold())):
            return self._verdict
        for pattern in self._patterns:
            if pattern.search(draft.body):
                return self._verdict
        return None


class LinkSpam:
    """More than ``max_links`` links in one message, or any link from an account younger
    than ``new_account_seconds`` (its age read from its id: no query)."""

    def __init__(
        self,
        *,
        max_links: int,
        new_account_seconds: int,
        decision: Decision,
        now_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self._max = max_links
        self._young_ms = new_account_seconds * 1000
        self._now_ms = now_ms
        self._verdict = Verdict(decision, "links", ReportReason.SPAM)

    @property
    def empty(self) -> bool:
        return self._max <= 0 and self._young_ms <= 0

    def judge(self, draft: MessageDraft) -> Verdict | None:
        if "://" not in draft.body and "www." not in draft.body.lower():
            return None
        links = len(_LINK.findall(draft.body))
        if links == 0:
            return None
        if self._max > 0 and links > self._max:
            return self._verdict
        if (
            self._young_ms > 0
            and self._now_ms() - id_timestamp_ms(draft.sender_id) < self._young_ms
        ):
            return self._verdict
        return None


def rejected(verdict: Verdict) -> InvalidInput:
    return InvalidInput(
        "the message was refused by moderation",
        code="message_rejected",
        details={"rule": verdict.rule or "classifier"},
    )


class Moderation:
    def __init__(
        self,
        rules: Sequence[Rule] = (),
        classifier: MessageClassifier | None = None,
        *,
        budget_seconds: float = 0.05,
        on_failure: Callable[[str], None] = lambda _reason: None,
        on_decision: Callable[[str], None] = lambda _decision: None,
    ) -> None:
        """``on_failure(reason)``: the classifier timed out (``timeout``) or raised
        (``error``); ``on_decision(decision)``: every flag and reject (metrics)."""
        self._rules = list(rules)
        self._classifier = classifier
        self._budget = budget_seconds
        self._on_failure = on_failure
        self._on_decision = on_decision

    async def judge(self, draft: MessageDraft) -> Verdict:
        """The verdict on ``draft``; raises InvalidInput ``message_rejected`` (422) on a
        reject. Never fails otherwise: a classifier that is slow or broken allows."""
        verdict = Verdict.allow()
        for rule in self._rules:
            found = rule.judge(draft)
            if found is not None and _RANK[found.decision] > _RANK[verdict.decision]:
                verdict = found
        if verdict.decision is not Decision.REJECT and self._classifier is not None:
            found = await self._classify(draft)
            if _RANK[found.decision] > _RANK[verdict.decision]:
                verdict = found
        if verdict.decision is not Decision.ALLOW:
            self._on_decision(verdict.decision.value)
        if verdict.decision is Decision.REJECT:
            raise rejected(verdict)
        return verdict

    async def _classify(self, draft: MessageDraft) -> Verdict:
        assert self._classifier is not None
        try:
            found: object = await asyncio.wait_for(self._classifier.classify(draft), self._budget)
        except TimeoutError:
            self._on_failure("timeout")
            log.warning("moderation_classifier_timeout", budget_ms=round(self._budget * 1000))
            return Verdict.allow()
        except Exception:
            self._on_failure("error")
            log.warning("moderation_classifier_failed", exc_info=True)
            return Verdict.allow()
        if not isinstance(found, Verdict):
            self._on_failure("error")
            log.warning("moderation_classifier_bad_answer", answer=type(found).__name__)
            return Verdict.allow()
        if found.decision is not Decision.ALLOW and found.rule is None:
            found = Verdict(found.decision, "classifier", found.reason)
        return found


def load_classifier(spec: str) -> MessageClassifier:
    """The classifier that ``module:factory`` makes (``factory()``, no arguments). Raises
    ValueError with a message for the operator when it cannot."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r} is not of the form module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attr!r}")
    try:
        made = factory()
    except Exception as exc:
        raise ValueError(f"{spec}() failed: {exc!r}") from exc
    classify = getattr(made, "classify", None)
    if classify is None or not inspect.iscoroutinefunction(classify):
        raise ValueError(f"{spec}() must return an object with `async def classify(draft)`")
    result: MessageClassifier = made
    return result
