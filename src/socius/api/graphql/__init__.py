"""GraphQL at /graphql: queries, mutations and subscriptions over the same services as REST
(docs/graphql.md). Transport only, as REST: each root field parses its arguments, calls
one service, and shapes the answer."""

from socius.api.graphql.controller import graphql_controller

__all__ = ["graphql_controller"]
