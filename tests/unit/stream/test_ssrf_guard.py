"""The webhook sender's guard: which addresses it refuses, and that it checks every
address a name resolves to, per request."""

from __future__ import annotations

import pytest

from socius.services.ports import WebhookRefused
from socius.stream.http_sender import HttpWebhookSender, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 (an address to refuse, not to bind)
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_private_loopback_and_link_local_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


async def test_a_name_with_one_private_address_is_refused() -> None:
    async def resolve(_host: str, _port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    sender = HttpWebhookSender(resolve=resolve)
    with pytest.raises(WebhookRefused, match="not allowed"):
        await sender.post("https://hooks.example.com/x", {}, b"{}")
    await sender.close()


async def test_an_unresolvable_name_is_refused() -> None:
    async def resolve(_host: str, _port: int) -> list[str]:
        raise OSError("no such name")

    sender = HttpWebhookSender(resolve=resolve)
    with pytest.raises(WebhookRefused, match="resolve"):
        await sender.post("https://nowhere.invalid/", {}, b"{}")
    await sender.close()
