"""Operational endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import MediaType, Response, get
from litestar.datastructures import State

from socius.api.dependencies import container_of

__all__ = ["healthz", "readyz"]


@get("/healthz", summary="The process is up", tags=["operations"], media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    summary="Every dependency answers",
    tags=["operations"],
    description="200 when the database (and Redis, when configured) answer; 503 otherwise.",
)
async def readyz(state: State) -> Response[dict[str, Any]]:
    checks = container_of(state).readiness
    results: dict[str, str] = {}

    async def run(name: str) -> None:
        try:
            await asyncio.wait_for(checks[name](), timeout=2.0)
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready
            results[name] = f"error: {type(exc).__name__}"

    await asyncio.gather(*(run(name) for name in checks))
    ok = all(v == "ok" for v in results.values())
    return Response(
        {"status": "ok" if ok else "unavailable", "checks": results},
        status_code=200 if ok else 503,
    )
