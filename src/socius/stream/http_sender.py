"""Webhook requests over HTTP (httpx), with the guard against server-side request forgery.

Per request: the host is resolved, every address it resolves to is checked (loopback,
private, link-local, multicast, reserved, unspecified and carrier-grade NAT ranges are
refused unless ``allow_private``), and the request is sent to the checked address itself
(the Host header and TLS server name stay the URL's), so a second DNS answer cannot
redirect it. Redirects are not followed; the whole exchange has a deadline; at most
``max_response_bytes`` of the answer are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from socius.services.ports import WebhookRefused, WebhookResponse

__all__ = ["HttpWebhookSender", "is_public_address"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def is_public_address(text: str) -> bool:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
    )


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class HttpWebhookSender:
    """Implements services/ports.py ``WebhookSender``."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        max_response_bytes: int = 64 * 1024,
        resolve: Resolver = _resolve,
    ) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._cap = max_response_bytes
        self._resolve = resolve
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                trust_env=False,
                headers={"user-agent": "socius-webhooks"},
            )
        return self._client

    async def _address(self, host: str, port: int) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a bad IDNA name
            raise WebhookRefused("the host does not resolve") from exc
        if not addresses:
            raise WebhookRefused("the host does not resolve")
        if not self._allow_private and not all(map(is_public_address, addresses)):
            raise WebhookRefused("destination not allowed (private, loopback or link-local)")
        return addresses[0]

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        parts = urlsplit(url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        address = await self._address(host, parts.port or (443 if https else 80))
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        sent = {
            "content-type": "application/json",  # unless the caller says (Web Push)
            **headers,
            "host": parts.netloc.rpartition("@")[2],
        }
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http().stream(
                    "POST",
                    target,
                    content=body,
                    headers=sent,
                    extensions={"sni_hostname": host} if https else {},
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= self._cap:
                            break
                    status = response.status_code
        except TimeoutError as exc:
            raise WebhookRefused("timed out") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise WebhookRefused(f"request failed: {type(exc).__name__}") from exc
        return WebhookResponse(status, int((time.monotonic() - started) * 1000))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
