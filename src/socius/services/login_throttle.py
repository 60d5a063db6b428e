"""Fair login throttling (OWASP ASVS V6): slow password guessing down without handing
anyone a way to lock a victim out.

Failed logins are counted in the cache (shared by all nodes on Redis), three ways, each
over ``window`` seconds from its first failure:

- per **(account, client address)**: past ``per_ip_and_account`` failures, that address
  may not try that account again until its window ends;
- per **client address**: past ``per_ip`` failures, that address may not log in at all
  until its window ends (one address guessing across many accounts);
- per **account**, from every address together: a ceiling far higher (``per_account``)
  against guessing spread over many addresses. Past it there is no long wall but a
  backoff: each further failure holds the account for ``backoff`` seconds, the next one
  twice as long, and so on, at most ``backoff_max``. Addresses the account has logged in
  from within ``known_ttl`` are not held (their own limits above still apply), so its
  owner's usual devices get in.

A correct password from an address that has not failed logs in as long as the account is
not held; the attempt is refused before the password is checked, so a refusal says
nothing about the password. IPv6 clients are counted per /64, the block one subscriber
usually holds. A cache outage fails open: logins go ahead and the misses are counted.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable

from socius.domain.errors import CacheUnavailable, RateLimited
from socius.services.ports import Cache

__all__ = ["LoginThrottle", "address_key"]

_KNOWN_TTL = 30 * 24 * 3600.0
_CACHE_OP = "throttle_login"


def address_key(ip: str) -> str:
    """What a client address is counted as: itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    def __init__(
        self,
        cache: Cache,
        *,
        per_ip_and_account: int,
        per_ip: int,
        per_account: int,
        window_seconds: float,
        backoff_seconds: float,
        backoff_max_seconds: float,
        known_ttl_seconds: float = _KNOWN_TTL,
        on_refused: Callable[[str], None] = lambda _scope: None,
        on_cache_error: Callable[[str], None] = lambda _op: None,
    ) -> None:
        self._cache = cache
        self._per_pair = per_ip_and_account
        self._per_ip = per_ip
        self._per_account = per_account
        self._window = window_seconds
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._known_ttl = known_ttl_seconds
        self._on_refused = on_refused
        self._on_cache_error = on_cache_error

    @staticmethod
    def _keys(account: str, ip: str) -> tuple[str, str, str, str, str]:
        """The counters of the address, the pair and the account; the hold; the mark of
        an address the account logged in from."""
        address = address_key(ip)
        return (
            f"login:ip:{address}",
            f"login:pair:{account}:{address}",
            f"login:account:{account}",
            f"login:hold:{account}",
            f"login:known:{account}:{address}",
        )

    async def check(self, account: str, ip: str) -> None:
        """Raise RateLimited (429 ``too_many_attempts``) when this attempt may not go on.
        ``account`` names the account tried (or the unknown name typed)."""
        ip_key, pair_key, _, hold_key, known_key = self._keys(account, ip)
        try:
            ip_n, pair_n, held, known = await self._cache.get_many(
                [ip_key, pair_key, hold_key, known_key]
            )
            if _count(ip_n) >= self._per_ip:
                scope, key = "ip", ip_key
            elif _count(pair_n) >= self._per_pair:
                scope, key = "ip_account", pair_key
            elif held is not None and known is None:
                scope, key = "account", hold_key
            else:
                return
            retry_after = await self._cache.ttl(key)
        except CacheUnavailable:
            self._on_cache_error(_CACHE_OP)
            return
        self._on_refused(scope)
        raise RateLimited(
            "too many attempts; try again later",
            retry_after=max(1, math.ceil(retry_after)),
            code="too_many_attempts",
        )

    async def failed(self, account: str, ip: str) -> None:
        """Count a failed attempt; past the account's ceiling, hold the account a while."""
        ip_key, pair_key, account_key, hold_key, _ = self._keys(account, ip)
        try:
            await self._cache.incr(ip_key, ttl=self._window)
            await self._cache.incr(pair_key, ttl=self._window)
            failures = await self._cache.incr(account_key, ttl=self._window)
            if failures >= self._per_account:
                over = min(failures - self._per_account, 30)
                hold = min(self._backoff * 2**over, self._backoff_max)
                await self._cache.set(hold_key, b"1", ttl=hold)
        except CacheUnavailable:
            self._on_cache_error(_CACHE_OP)

    async def succeeded(self, account: str, ip: str) -> None:
        """The address's failures on the account are forgiven, and the address becomes
        one the account is known to log in from. (The account's count stays: its owner
        logging in must not give a guesser a fresh allowance.)"""
        _, pair_key, _, _, known_key = self._keys(account, ip)
        try:
            await self._cache.delete(pair_key)
            await self._cache.set(known_key, b"1", ttl=self._known_ttl)
        except CacheUnavailable:
            self._on_cache_error(_CACHE_OP)


def _count(raw: bytes | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0
