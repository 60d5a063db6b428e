"""The schema: the three roots, the limits, and the error codes."""

from __future__ import annotations

from functools import partial
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter
from strawberry.types import ExecutionContext

from socius.api.graphql.errors import ErrorCodes, log_errors
from socius.api.graphql.limits import MAX_TOKENS, QueryLimits
from socius.api.graphql.mutation import Mutation
from socius.api.graphql.query import Query
from socius.api.graphql.subscription import Subscription

__all__ = ["SociusSchema", "build_schema"]


class SociusSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log bugs and outages only (Strawberry logs every error, the client's too)."""
        log_errors(errors, execution_context.operation_name if execution_context else None)


def build_schema() -> SociusSchema:
    extensions: list[Any] = [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        QueryLimits,
        ErrorCodes,
    ]
    return SociusSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )
