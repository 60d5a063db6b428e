"""A fake socius server on httpx.MockTransport: canned answers, every request recorded.

A uniquely named module (not conftest) so tests can import it whatever other conftests exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], httpx.Response]

CREATED = "2024-05-01T12:00:00Z"
UPDATED = "2024-05-02T08:30:15.250000Z"


class FakeApi:
    """Routes `(method, path)` to a JSON answer or a handler; records every request."""

    @staticmethod
    def public_user(**overrides: Any) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": "1234567890123456789",
            "username": "ada",
            "display_name": "Ada",
            "bio": "",
            "avatar_url": None,
            "is_private": False,
            "friends_count": 2,
            "followers_count": 3,
            "following_count": 4,
            "created_at": CREATED,
        }
        user.update(overrides)
        return user

    @staticmethod
    def private_user(**overrides: Any) -> dict[str, Any]:
        user = FakeApi.public_user(
            email="ada@example.com",
            dm_policy="everyone",
            settings={"theme": "dark"},
            updated_at=UPDATED,
        )
        user.update(overrides)
        return user

    @staticmethod
    def conversation(**overrides: Any) -> dict[str, Any]:
        conversation: dict[str, Any] = {
            "id": "77",
            "kind": "direct",
            "title": None,
            "owner_id": None,
            "message_ttl_seconds": None,
            "member_count": 2,
            "member_ids": ["1", "2"],
            "role": "member",
            "last_seq": 3,
            "last_read_seq": 1,
            "unread_count": 2,
            "muted": False,
            "last_message": None,
            "created_at": CREATED,
            "updated_at": UPDATED,
        }
        conversation.update(overrides)
        return conversation

    @staticmethod
    def auth_body(access: str = "access-1", refresh: str = "refresh-1") -> dict[str, Any]:
        return {
            "user": FakeApi.private_user(),
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": 900,
        }

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[httpx.Request] = []

    def on(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            if body is None:
                return httpx.Response(status, headers=headers)
            return httpx.Response(status, json=body, headers=headers)

        self.routes[(method, path)] = handler

    def handle(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")  # still percent-encoded
        handler = self.routes.get((request.method, path))
        if handler is None:
            return httpx.Response(
                404, json={"error": {"code": "not_found", "message": "no route", "details": {}}}
            )
        return handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
