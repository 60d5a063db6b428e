"""The browser client and the API reference in a real browser (Debian's Chromium, driven
by Playwright) against real ``socius serve`` processes.

Two people sign up, become friends and chat, each in their own browser context (one on a
desktop, one on a phone-sized screen); each sees the other's messages, typing, reactions,
edits and deletes live, and unread badges and read receipts follow. Across two nodes of
a cluster, a client whose node died resumes from its cursor and gets what it missed.
``/docs`` lists every operation with the network off. An administrator disables an account
from the admin page, whose browser is signed out at once, and finds the action in the
audit log. A person signs in with an OpenID provider, adds a passkey (Chromium's virtual
authenticator) and signs in with it. Screenshots: e2e/browser.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)

from conftest import NATS_URL, require_service
from e2e.browser import CHROMIUM_ARGS, Shots, chromium_path
from e2e.cluster import SOCIUS, Cluster, Node, free_port
from oidc_provider import OidcProvider, running_provider

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PASSWORD = "correct horse battery staple"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

# Waits for what the other browser will see: the machine may be busy, so be generous.
# (A bound on waiting, not a measure of speed.)
expect.set_options(timeout=30_000)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Node]:
    """``socius serve`` as a new user runs it: embedded, SQLite in a fresh data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
    env.update(
        {
            "SOCIUS_DATA_DIR": str(tmp_path / "data"),
            "SOCIUS_ARGON2_MEMORY_KIB": "1024",
            "SOCIUS_ARGON2_TIME_COST": "1",
            "SOCIUS_LOG_LEVEL": "warning",
        }
    )
    node = Node("embedded", free_port(), env, tmp_path / "server.log")
    await node.start()
    try:
        yield node
    finally:
        node.sweep()


@pytest.fixture
def bus() -> str:
    """The cluster's bus: NATS only (the Redis bus is covered by test_multi_node.py)."""
    require_service(NATS_URL, "nats")
    return "nats"


class Person:
    """One browser context signed up as ``name``."""

    def __init__(self, name: str, context: BrowserContext, page: Page) -> None:
        self.name = name
        self.display = name.capitalize()
        self.context = context
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def sign_up(self, base_url: str, suffix: str) -> None:
        page = self.page
        await page.goto(f"{base_url}/#/register")
        await page.get_by_label("Username").fill(f"{self.name}_{suffix}")
        await page.get_by_label("Display name (optional)").fill(self.display)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.get_by_role("heading", name="Chats")).to_be_visible()
        await expect(page.locator("#connection")).to_have_text("Connected")

    async def open_nav(self, name: str) -> None:
        await (
            self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        )

    def messages(self) -> Locator:
        return self.page.locator("ol.messages")

    def composer(self) -> Locator:
        return self.page.get_by_label("Message", exact=True)

    async def say(self, text: str) -> None:
        await self.composer().fill(text)
        await self.composer().press("Enter")
        await expect(self.messages()).to_contain_text(text)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "orange").save(out, format="PNG")
    return out.getvalue()


async def person(browser: Browser, name: str, device: dict[str, object]) -> Person:
    context = await browser.new_context(**device)  # type: ignore[arg-type]
    return Person(name, context, await context.new_page())


async def befriend(asker: Person, other: Person, suffix: str) -> None:
    """``asker`` finds ``other`` and sends a request; ``other`` accepts it."""
    await asker.open_nav("People")
    await asker.page.get_by_label("Search people").fill(f"{other.name}_{suffix}")
    await asker.page.get_by_role("button", name="Search").click()
    await asker.page.get_by_role("button", name=f"Add friend: {other.display}").click()
    await expect(
        asker.page.get_by_role("button", name=f"Cancel request: {other.display}").first
    ).to_be_visible()
    # The request reaches the other browser live: its People badge counts it.
    badge = other.page.locator("#badge-people")
    await expect(badge).to_have_text("1 friend requests")
    await other.open_nav("People")
    await other.page.get_by_role("button", name=f"Accept: {asker.display}").click()
    await expect(other.page.get_by_role("button", name=f"Message {asker.display}")).to_be_visible()
    await expect(badge).to_be_hidden()
    await expect(
        asker.page.get_by_role("button", name=f"Message {other.display}").first
    ).to_be_visible()


async def test_two_people_sign_up_befriend_and_chat_live(
    browser: Browser, embedded: Node, shots: Shots
) -> None:
    base = embedded.http_url
    suffix = os.urandom(3).hex()
    alice = await person(browser, "alice", DESKTOP)
    bob = await person(browser, "bob", PHONE)
    # Alice's clock can be moved ahead, to see her access token refreshed.
    await alice.context.clock.install()
    a, b = alice.page, bob.page

    await alice.sign_up(base, suffix)
    await bob.sign_up(base, suffix)
    await a.screenshot(path=shots.path("alice-signed-up"))
    await befriend(alice, bob, suffix)
    await b.screenshot(path=shots.path("bob-phone-friends"))

    # Alice opens the direct conversation and writes; Bob is elsewhere: an unread badge.
    await a.get_by_role("button", name="Message Bob").first.click()
    await expect(a.get_by_role("heading", name="Bob")).to_be_visible()
    await alice.say("Hello Bob!")
    await expect(b.locator("#badge-chats")).to_have_text("1 unread")
    await bob.open_nav("Chats")
    await expect(b.get_by_role("link", name="Alice").locator(".badge")).to_have_text("1 unread")
    await b.screenshot(path=shots.path("bob-phone-unread"))
    await b.get_by_role("link", name="Alice").click()
    await expect(bob.messages()).to_contain_text("Hello Bob!")
    # Reading it clears Bob's badge and shows Alice a receipt.
    await expect(b.locator("#badge-chats")).to_be_hidden()
    await expect(a.locator(".receipt")).to_have_text("Seen")

    # Typing is shown live, then the reply arrives live and is announced to screen readers.
    await bob.composer().press_sequentially("Hi Al")
    await expect(a.get_by_role("status").filter(has_text="typing")).to_have_text("Bob is typing…")
    await bob.composer().fill("Hi Alice!")
    await bob.composer().press("Enter")
    await expect(alice.messages()).to_contain_text("Hi Alice!")
    await expect(a.locator("#announcer")).to_have_text("New message from Bob: Hi Alice!")
    await expect(a.get_by_role("status").filter(has_text="typing")).to_have_count(0)

    # A reaction, with the keyboard.
    bobs = a.locator("li.message", has_text="Hi Alice!")
    await bobs.get_by_role("button", name="React to Bob's message").focus()
    await a.keyboard.press("Enter")
    await a.get_by_role("button", name="React with 👍").focus()
    await a.keyboard.press("Enter")
    await expect(bobs.get_by_role("button", name="👍 1")).to_have_attribute("aria-pressed", "true")
    await expect(bobs.get_by_role("button", name="React to Bob's message")).to_be_focused()
    await expect(
        b.locator("li.message", has_text="Hi Alice!").get_by_role("button", name="👍 1")
    ).to_be_visible()

    # Twenty minutes later (on Alice's clock), her access token has expired: editing
    # refreshes it first, and the new refresh token replaces the spent one.
    before = json.loads(await a.evaluate("localStorage.getItem('socius.session')"))
    await alice.context.clock.fast_forward("20:00")
    mine = a.locator("li.message.mine", has_text="Hello Bob!")
    await mine.get_by_role("button", name="Edit your message").click()
    await alice.composer().fill("Hello again, Bob!")
    await alice.composer().press("Enter")
    await expect(mine).to_have_count(0)
    await expect(a.locator("li.message.mine", has_text="Hello again, Bob!")).to_contain_text(
        "(edited)"
    )
    after = json.loads(await a.evaluate("localStorage.getItem('socius.session')"))
    assert after["refresh_token"] != before["refresh_token"]
    edited = b.locator("li.message", has_text="Hello again, Bob!")
    await expect(edited).to_contain_text("(edited)")
    await expect(bob.messages()).not_to_contain_text("Hello Bob!")
    await b.screenshot(path=shots.path("bob-phone-chat"))
    await a.screenshot(path=shots.path("alice-chat"))

    # Delete for everyone: Bob's copy becomes a tombstone, the words are gone.
    a.once("dialog", lambda dialog: dialog.accept())
    await (
        a.locator("li.message.mine", has_text="Hello again, Bob!")
        .get_by_role("button", name="Delete your message")
        .click()
    )
    await expect(bob.messages()).to_contain_text("This message was deleted.")
    await expect(bob.messages()).not_to_contain_text("Hello again")
    await b.screenshot(path=shots.path("bob-phone-deleted"))

    # An image with no text: Bob sees its thumbnail, and the whole image on a click.
    await a.get_by_label("Attach files").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png(60, 40)}]
    )
    await expect(a.get_by_role("list", name="Files to send")).to_contain_text("dot.png")
    await a.get_by_role("button", name="Send").click()
    await expect(a.get_by_role("list", name="Files to send")).to_be_hidden()
    opener = b.get_by_role("button", name="Open image dot.png")
    thumb = opener.locator("img")
    await expect(thumb).to_have_attribute("src", re.compile("^blob:"))
    assert await thumb.evaluate("i => i.decode().then(() => i.naturalWidth)") > 0
    await opener.click()
    await expect(b.get_by_role("dialog", name="dot.png").locator("img")).to_be_visible()
    await b.screenshot(path=shots.path("bob-phone-image"))
    await b.get_by_role("button", name="Close").click()
    await expect(b.get_by_role("dialog")).to_have_count(0)

    # Bob signs out: his session ends, and Alice sees him go offline.
    await expect(a.locator(".conv-sub")).to_have_text("Online")
    await b.get_by_role("button", name="Sign out").click()
    await expect(b.get_by_role("heading", name="Sign in to socius")).to_be_visible()
    await expect(b.get_by_role("status").filter(has_text="signed out")).to_be_visible()
    await expect(a.locator(".conv-sub")).to_contain_text("Last seen")
    await b.reload()
    await expect(b.get_by_role("heading", name="Sign in to socius")).to_be_visible()
    await a.screenshot(path=shots.path("alice-bob-gone"))
    assert alice.errors == []
    assert bob.errors == []


async def test_a_client_whose_node_died_resumes_where_it_was(
    browser: Browser, cluster: Cluster, shots: Shots
) -> None:
    """Alice and Bob on two nodes of a cluster (PostgreSQL, Redis, NATS): messages cross
    nodes live, in a direct conversation and a group. Bob's node dies, Alice writes, and
    Bob's client, reconnected to the restarted node with its last cursor, gets the
    message without reloading anything."""
    node_a, node_b = await cluster.start("a", "b")
    suffix = os.urandom(3).hex()
    alice = await person(browser, "alice", DESKTOP)
    bob = await person(browser, "bob", DESKTOP)
    await alice.sign_up(node_a.http_url, suffix)
    await bob.sign_up(node_b.http_url, suffix)
    await befriend(alice, bob, suffix)
    await alice.page.get_by_role("button", name="Message Bob").first.click()
    await alice.say("Across the nodes")
    await bob.open_nav("Chats")
    await bob.page.get_by_role("link", name="Alice").click()
    await expect(bob.messages()).to_contain_text("Across the nodes")
    await bob.say("Received on node b")
    await expect(alice.messages()).to_contain_text("Received on node b")

    # A group: it appears in Bob's list as soon as Alice creates it, with her message.
    await alice.open_nav("Chats")
    await alice.page.get_by_role("button", name="New group").click()
    await alice.page.get_by_label("Group name").fill("Weekend plans")
    await alice.page.get_by_role("group", name="Members").get_by_label("Bob").check()
    await alice.page.get_by_role("button", name="Create group").click()
    await expect(alice.page.get_by_role("heading", name="Weekend plans")).to_be_visible()
    await alice.say("Group hello")
    group = bob.page.get_by_role("link", name="Weekend plans")
    await expect(group.locator(".badge")).to_have_text("1 unread")
    await group.click()
    await expect(bob.messages()).to_contain_text("Group hello")

    node_b.kill()
    await expect(bob.page.locator("#connection")).not_to_have_text("Connected")
    await alice.say("Sent while your node was down")
    await bob.page.screenshot(path=shots.path("bob-offline"))
    await node_b.start()
    await expect(bob.page.locator("#connection")).to_have_text("Connected")
    await expect(bob.messages()).to_contain_text("Sent while your node was down")
    await bob.page.screenshot(path=shots.path("bob-resumed"))
    assert alice.errors == []
    assert bob.errors == []


async def test_the_api_reference_works_with_the_network_off(
    browser: Browser, embedded: Node, shots: Shots
) -> None:
    base = embedded.http_url
    local = urlsplit(base).netloc
    async with httpx.AsyncClient() as http:
        schema = (await http.get(f"{base}/openapi.json")).json()
    # Swagger UI lists an operation once under each of its tags.
    operations = sum(
        max(1, len(operation.get("tags", [])))
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    )
    context = await browser.new_context(**DESKTOP)  # type: ignore[arg-type]
    elsewhere: list[str] = []

    async def only_local(route, request) -> None:  # type: ignore[no-untyped-def]
        if urlsplit(request.url).netloc == local:
            await route.continue_()
        else:
            elsewhere.append(request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_local)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await page.goto(f"{base}/docs")
    listed = page.locator(".opblock-summary")
    await expect(listed.first).to_be_visible()
    await expect(listed).to_have_count(operations)
    await expect(
        page.locator(".opblock-summary-path", has_text="/v1/conversations")
    ).not_to_have_count(0)
    await page.screenshot(path=shots.path("docs"), full_page=False)
    assert elsewhere == []
    assert problems == []


async def test_an_administrator_disables_an_account_and_finds_it_in_the_audit_log(
    browser: Browser, embedded: Node, shots: Shots
) -> None:
    base = embedded.http_url
    suffix = os.urandom(3).hex()
    mallory = await person(browser, "mallory", PHONE)
    await mallory.sign_up(base, suffix)
    await expect(
        mallory.page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")
    ).to_be_hidden()

    # The operator makes the first administrator on the command line (docs/admin.md).
    boss = f"boss_{suffix}"
    made = await asyncio.create_subprocess_exec(
        str(SOCIUS),
        *("admin", "create-user", boss, "--password", PASSWORD, "--admin"),
        env=embedded.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(made.communicate(), timeout=60)
    assert made.returncode == 0, stderr.decode()
    admin = await person(browser, "boss", DESKTOP)
    page = admin.page
    await page.goto(f"{base}/#/login")
    await page.get_by_label("Username or email").fill(boss)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Chats")).to_be_visible()
    await admin.open_nav("Admin")
    await expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    # The command line's own action is the first entry of the log.
    log = page.get_by_role("list", name="Audit log")
    await expect(log.get_by_role("listitem").first).to_contain_text(
        f"The command line created @{boss}"
    )

    name = f"mallory_{suffix}"
    await page.get_by_label("Find accounts").fill(name)
    await page.get_by_role("button", name="Find", exact=True).click()
    accounts = page.get_by_role("list", name="Accounts")
    await expect(accounts.get_by_role("listitem")).to_have_count(1)
    await expect(accounts).to_contain_text(f"@{name}")
    await page.get_by_label("Reason for your next action (optional)").fill("spam links")
    # With the keyboard.
    await page.get_by_role("button", name=f"Disable: @{name}").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name=f"Enable: @{name}")).to_be_visible()
    await expect(accounts).to_contain_text("disabled")
    await expect(page.locator("#announcer")).to_have_text(f"@{name} disabled.")
    entry = log.get_by_role("listitem").first
    await expect(entry).to_contain_text(f"@{boss} disabled @{name}")
    await expect(entry).to_contain_text("Reason: spam links · 1 session(s) ended")
    await page.screenshot(path=shots.path("admin-disabled"), full_page=True)

    # Mallory's session ended at once: her socket closed, and her client signed her out.
    await expect(mallory.page.get_by_role("heading", name="Sign in to socius")).to_be_visible()
    await expect(
        mallory.page.get_by_role("status").filter(has_text="session has ended")
    ).to_be_visible()
    await mallory.page.screenshot(path=shots.path("mallory-signed-out"))

    await page.get_by_role("button", name=f"Enable: @{name}").click()
    await expect(log.get_by_role("listitem").first).to_contain_text(f"@{boss} enabled @{name}")
    assert admin.errors == []
    assert mallory.errors == []


@pytest.fixture
async def federated(tmp_path: Path) -> AsyncIterator[tuple[Node, OidcProvider, str]]:
    """``socius serve`` embedded, with a real OpenID provider beside it, reached by the
    browser as ``localhost`` (passkeys need a domain, not an IP address)."""
    with running_provider() as provider:
        port = free_port()
        public = f"http://localhost:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")}
        env.update(
            {
                "SOCIUS_DATA_DIR": str(tmp_path / "data"),
                "SOCIUS_ARGON2_MEMORY_KIB": "1024",
                "SOCIUS_ARGON2_TIME_COST": "1",
                "SOCIUS_LOG_LEVEL": "warning",
                "SOCIUS_PUBLIC_URL": public,
                "SOCIUS_OIDC_PROVIDERS": json.dumps(
                    {
                        "acme": {
                            "issuer": provider.issuer,
                            "client_id": provider.client_id,
                            "client_secret": provider.client_secret,
                            "display_name": "Acme ID",
                        }
                    }
                ),
            }
        )
        node = Node("federated", port, env, tmp_path / "server.log")
        await node.start()
        try:
            yield node, provider, public
        finally:
            node.sweep()


async def test_sign_in_with_a_provider_then_with_a_passkey(
    browser: Browser, federated: tuple[Node, OidcProvider, str], shots: Shots
) -> None:
    _, provider, public = federated
    name = f"ada_{os.getpid()}"
    provider.sign_in_as(
        f"sub-{name}", email=f"{name}@example.org", email_verified=True, preferred_username=name
    )
    context = await browser.new_context(**DESKTOP)  # type: ignore[arg-type]
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{public}/")
    sign_in = page.get_by_role("link", name="Sign in with Acme ID")
    await expect(sign_in).to_be_visible()
    await page.screenshot(path=shots.path("providers"), full_page=False)
    await sign_in.click()  # to the provider, which signs ada in, and back
    await expect(page.get_by_role("heading", name="Chats")).to_be_visible()
    assert "oidc_code" not in page.url
    me = await page.evaluate(
        "fetch('/v1/me', {headers: {authorization: 'Bearer ' + "
        "JSON.parse(localStorage.getItem('socius.session')).access_token}}).then(r => r.json())"
    )
    assert (me["username"], me["email_verified"]) == (name, True)

    # A passkey, made by Chromium's virtual authenticator (a PIN-verified platform key).
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    added = await page.evaluate(
        """async () => {
          const token = JSON.parse(localStorage.getItem('socius.session')).access_token;
          const call = (path, body) => fetch(path, {
            method: 'POST',
            headers: {authorization: 'Bearer ' + token, 'content-type': 'application/json'},
            body: JSON.stringify(body),
          }).then(r => r.json());
          const {options} = await call('/v1/me/passkeys/begin', {});
          const credential = await navigator.credentials.create(
            {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
          const body = {credential: credential.toJSON(), name: 'chromium'};
          return call('/v1/me/passkeys/finish', body);
        }"""
    )
    assert added["name"] == "chromium", added
    await page.get_by_role("button", name="Sign out").click()
    passkey = page.get_by_role("button", name="Use a passkey")
    await expect(passkey).to_be_visible()
    await passkey.click()
    await expect(page.get_by_role("heading", name="Chats")).to_be_visible()
    await page.screenshot(path=shots.path("passkey"), full_page=False)
    assert errors == []
