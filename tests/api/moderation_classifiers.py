"""Classifiers for tests/api/test_moderation_hook.py, loaded as the server loads any:
``SOCIUS_MODERATION_CLASSIFIER=moderation_classifiers:<factory>``."""

from __future__ import annotations

import asyncio

from socius.domain.reports import Decision, ReportReason, Verdict
from socius.services.moderation import MessageDraft

__all__ = ["Counting", "counting", "failing", "keywords", "slow"]


class Keywords:
    """Flags ``model-flag``, rejects ``model-reject``: a stand-in for a model."""

    async def classify(self, draft: MessageDraft) -> Verdict:
        await asyncio.sleep(0)
        if "model-reject" in draft.body:
            return Verdict(Decision.REJECT, "toy_model", ReportReason.HARASSMENT)
        if "model-flag" in draft.body:
            return Verdict(Decision.FLAG, "toy_model", ReportReason.HARASSMENT)
        return Verdict.allow()


class Slow:
    """Would reject everything, if it were ever waited for long enough."""

    async def classify(self, draft: MessageDraft) -> Verdict:
        await asyncio.sleep(30)
        return Verdict(Decision.REJECT, "slow_model")


class Counting:
    """Never answers within a budget; counts how many sends it holds at once."""

    inflight = 0
    most = 0

    async def classify(self, draft: MessageDraft) -> Verdict:
        Counting.inflight += 1
        Counting.most = max(Counting.most, Counting.inflight)
        try:
            await asyncio.sleep(30)
        finally:
            Counting.inflight -= 1
        return Verdict(Decision.REJECT, "counting")


class Failing:
    async def classify(self, draft: MessageDraft) -> Verdict:
        raise RuntimeError("the model server is down")


def keywords() -> Keywords:
    return Keywords()


def slow() -> Slow:
    return Slow()


def counting() -> Counting:
    Counting.inflight = Counting.most = 0
    return Counting()


def failing() -> Failing:
    return Failing()


def not_a_classifier() -> object:
    return object()
