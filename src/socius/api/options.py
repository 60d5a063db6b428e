"""OPTIONS answers that list every method of a path.

Litestar 2 builds the automatic OPTIONS handler of a path from the first handler
registered there, so ``OPTIONS /v1/conversations`` answered ``Allow: OPTIONS, POST``
while GET works too (litestar-org/litestar#4169, fixed in Litestar 3). A path that
already has an OPTIONS handler gets no automatic one, so ``with_options`` puts an
explicit one first for every path of a router's handlers.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_204_NO_CONTENT

__all__ = ["with_options"]


def with_options(handlers: Sequence[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """``handlers`` preceded by one OPTIONS handler per path, whose ``Allow`` names every
    method any of them serves there."""
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, {"OPTIONS"}).update(handler.http_methods)
    options = [_options(path, ", ".join(sorted(allowed))) for path, allowed in methods.items()]
    return [*options, *handlers]


def _options(path: str, allow: str) -> HTTPRouteHandler:
    def answer() -> Response[None]:
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return route(
        path,
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        sync_to_thread=False,
    )(answer)
