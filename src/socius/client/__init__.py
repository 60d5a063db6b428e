"""The socius Python SDK: an async and a sync client for the public HTTP API.

    async with AsyncClient("http://127.0.0.1:8080") as client:
        await client.login("ada", "correct horse")
        me = await client.me()

It depends only on httpx and msgspec, never on the server's packages.
"""

from socius.client._async import AsyncClient
from socius.client._errors import ApiError
from socius.client._models import (
    AuthResult,
    ListedUser,
    Page,
    PrivateUser,
    PublicUser,
    Relationship,
    SessionInfo,
    Suggestion,
    TokenPair,
)
from socius.client._sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthResult",
    "Client",
    "ListedUser",
    "Page",
    "PrivateUser",
    "PublicUser",
    "Relationship",
    "SessionInfo",
    "Suggestion",
    "TokenPair",
]
