"""The schema: the three roots, the limits, and the error codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache, partial
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import MaxTokensLimiter, SchemaExtension, ValidationCache
from strawberry.types import ExecutionContext

from socius.api.graphql.errors import ErrorCodes, log_errors
from socius.api.graphql.limits import MAX_TOKENS, QueryLimits
from socius.api.graphql.mutation import Mutation
from socius.api.graphql.query import Query
from socius.api.graphql.subscription import Subscription

__all__ = ["DOCUMENT_CACHE", "SociusSchema", "build_schema"]

DOCUMENT_CACHE = 1024  # distinct query texts kept parsed and validated (LRU)


@lru_cache(maxsize=DOCUMENT_CACHE)
def _parse(query: str, options: tuple[tuple[str, Any], ...]) -> DocumentNode:
    return parse(query, **dict(options))


class DocumentCache(SchemaExtension):
    """Strawberry's ParserCache, except that a document that does not parse is left to
    Strawberry, which reports it as an error of the operation (ParserCache's exception
    would escape the operation's extensions, and so its error code)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with contextlib.suppress(GraphQLError):
                options = tuple(sorted(context.parse_options.items()))
                context.graphql_document = _parse(context.query, options)
        yield


class SociusSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log bugs and outages only (Strawberry logs every error, the client's too)."""
        log_errors(errors, execution_context.operation_name if execution_context else None)


def build_schema() -> SociusSchema:
    extensions: list[Any] = [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        # The same documents come again and again: each is parsed and validated once.
        DocumentCache,
        partial(ValidationCache, maxsize=DOCUMENT_CACHE),
        QueryLimits,  # after validation: a valid document's size (variables may change it)
        ErrorCodes,
    ]
    return SociusSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )
