"""Attachments through the public API, on both stacks: files under the data dir (sqlite)
and SeaweedFS's S3 gateway (postgres). See docs/attachments.md.

Uploads are sniffed, size-limited while streamed, readable by their uploader and by the
members of the conversation they were sent in only; a message's deletion, its expiry, its
sender's erasure, and a day unsent remove the bytes from the store.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql_support import codes, gql, gql_error
from PIL import Image

from conftest import Account, App, Clock, make_app
from contract import assert_error
from socius.domain.attachments import BlobMissing, blob_key, thumbnail_key
from socius.settings import Settings

UPLOADS = "/v1/uploads"


def png(width: int = 40, height: int = 20, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n" + b"%" * 3000 + b"\n%%EOF\n"


@pytest.fixture
def settings_changes() -> dict[str, Any]:
    return {}


@pytest.fixture
def app(make_settings: Callable[..., Settings], clock: Clock, settings_changes: Any) -> App:
    return make_app(make_settings(**settings_changes), clock=clock)


def upload(a: Account, data: bytes, **headers: str) -> httpx.Response:
    return a.client.raw("POST", UPLOADS, content=data, headers=headers or None)


def uploaded(a: Account, data: bytes, filename: str | None = None) -> dict[str, Any]:
    response = a.client.raw(
        "POST", UPLOADS, content=data, params={"filename": filename} if filename else None
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def get(a: Account, attachment_id: str, suffix: str = "", **headers: str) -> httpx.Response:
    return a.client.raw("GET", f"/v1/attachments/{attachment_id}{suffix}", headers=headers)


def direct(a: Account, b: Account) -> str:
    return a.client.open_direct(b.id).id


def send(a: Account, cid: str, ids: list[str], body: str = "look") -> httpx.Response:
    return a.client.raw(
        "POST",
        f"/v1/conversations/{cid}/messages",
        json={"client_msg_id": uuid.uuid4().hex, "body": body, "attachment_ids": ids},
    )


def stored(http: Any, app: App, key: str) -> bytes | None:
    """The bytes the blob store holds under ``key`` (None: none)."""
    store = app.wiring.container.attachments.store

    async def read() -> bytes | None:
        try:
            return b"".join([c async for c in await store.read(key)])
        except BlobMissing:
            return None

    result: bytes | None = http.blocking_portal.call(read)
    return result


def purge(http: Any, app: App) -> int:
    removed: int = http.blocking_portal.call(app.wiring.container.attachments.purge)
    return removed


# ------------------------------------------------------------------------ upload, download


def test_upload_and_download_round_trip(register: Callable[..., Account]) -> None:
    ada = register()
    data = png(40, 20)
    answer = uploaded(ada, data, filename="../red dot.png")
    assert answer["content_type"] == "image/png"
    assert answer["size"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert (answer["width"], answer["height"]) == (40, 20)
    assert answer["filename"] == "red dot.png"

    response = get(ada, answer["id"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{answer["sha256"]}"'
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("inline;")
    assert 'filename="red dot.png"' in disposition

    pdf = uploaded(ada, PDF)
    assert pdf["content_type"] == "application/pdf"
    assert pdf["width"] is None
    assert pdf["height"] is None
    assert get(ada, pdf["id"]).headers["content-disposition"] == "attachment"


def test_the_sdk_uploads_and_downloads(register: Callable[..., Account]) -> None:
    ada, bo = register(), register()
    data = png(10, 10, "blue")
    attachment = ada.client.upload(data, filename="b.png")
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    cid = ada.client.open_direct(bo.id).id
    message = ada.client.send_message(
        cid, "a blue square", client_msg_id="m1", attachment_ids=[attachment.id]
    )
    assert [a.id for a in message.attachments] == [attachment.id]
    assert bo.client.messages(cid)[-1].attachments == [attachment]
    assert bo.client.download_attachment(attachment.id) == data
    assert bo.client.download_attachment(attachment.id, start=1, end=3) == data[1:4]


def test_multipart_uploads(register: Callable[..., Account], http: Any) -> None:
    ada = register()
    data = png(30, 10)
    auth = {"Authorization": f"Bearer {ada.client.access_token}"}
    response = http.post(
        UPLOADS,
        headers=auth,
        data={"caption": "ignored"},
        files={"file": ("photo.png", data, "text/plain")},  # the part's type is not believed
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["content_type"] == "image/png"
    assert answer["filename"] == "photo.png"
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert (answer["width"], answer["height"]) == (30, 10)
    assert get(ada, answer["id"]).content == data

    named = http.post(
        UPLOADS, headers=auth, params={"filename": "other.png"}, files={"upload": ("a.png", data)}
    )
    assert named.status_code == 201
    assert named.json()["filename"] == "other.png"

    no_file = http.post(UPLOADS, headers=auth, data={"caption": "no file"}, files={"x": ("", b"")})
    assert_error(no_file, 422, "invalid_multipart")
    broken = http.post(
        UPLOADS,
        headers={**auth, "Content-Type": "multipart/form-data; boundary=xyz"},
        content=b"--abc\r\nnot a form",
    )
    assert_error(broken, 422, "invalid_multipart")


def test_graphql_messages_list_their_attachments(register: Callable[..., Account]) -> None:
    ada, bo = register(), register()
    cid = direct(ada, bo)
    a = uploaded(ada, png(8, 4), filename="tiny.png")
    assert send(ada, cid, [a["id"]]).status_code == 201
    answer = gql(
        bo,
        "query($c: ID!) { conversation(id: $c) { messages { attachments "
        "{ id contentType size sha256 width height filename } } } }",
        c=cid,
    )
    assert answer["conversation"]["messages"][-1]["attachments"] == [
        {
            "id": a["id"],
            "contentType": "image/png",
            "size": a["size"],
            "sha256": a["sha256"],
            "width": 8,
            "height": 4,
            "filename": "tiny.png",
        }
    ]


def test_a_message_of_attachments_alone_has_an_empty_body(
    register: Callable[..., Account],
) -> None:
    """REST and GraphQL alike: the body may be empty exactly when files come with it."""
    ada, bo = register(), register()
    cid = direct(ada, bo)
    photo = uploaded(ada, png(6, 6))["id"]
    sent = send(ada, cid, [photo], body="")
    assert sent.status_code == 201, sent.text
    assert sent.json()["body"] == ""
    assert [a["id"] for a in sent.json()["attachments"]] == [photo]
    assert_error(send(ada, cid, [], body=""), 422, "empty_body")
    assert_error(send(ada, cid, [uploaded(ada, png())["id"]], body="  \n "), 422, "empty_body")

    mutation = (
        "mutation($c: ID!, $m: String!, $b: String!, $files: [ID!]) { sendMessage("
        "conversationId: $c, clientMsgId: $m, body: $b, attachmentIds: $files) "
        "{ body attachments { id contentType width } } }"
    )
    other = uploaded(ada, png(3, 2))["id"]
    answer = gql(ada, mutation, c=cid, m="g1", b="", files=[other])
    assert answer["sendMessage"] == {
        "body": "",
        "attachments": [{"id": other, "contentType": "image/png", "width": 3}],
    }
    assert codes(gql_error(ada, mutation, c=cid, m="g2", b="", files=[])) == ["empty_body"]
    assert codes(gql_error(ada, mutation, c=cid, m="g3", b="", files=None)) == ["empty_body"]
    # Sent through GraphQL is sent: the upload cannot go out twice.
    assert_error(send(ada, cid, [other]), 409, "attachment_already_sent")
    assert [m.body for m in bo.client.messages(cid)] == ["", ""]


def test_range_requests_and_etags(register: Callable[..., Account]) -> None:
    ada = register()
    data = PDF
    a = uploaded(ada, data)
    size = len(data)

    part = get(ada, a["id"], Range="bytes=0-9")
    assert part.status_code == 206
    assert part.content == data[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{size}"
    assert part.headers["content-length"] == "10"

    tail = get(ada, a["id"], Range="bytes=-5")
    assert (tail.status_code, tail.content) == (206, data[-5:])
    rest = get(ada, a["id"], Range=f"bytes={size - 3}-")
    assert (rest.status_code, rest.content) == (206, data[-3:])
    past = get(ada, a["id"], Range=f"bytes={size - 2}-{size + 100}")
    assert (past.status_code, past.content) == (206, data[-2:])

    beyond = get(ada, a["id"], Range=f"bytes={size}-")
    assert_error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{size}"

    # Several ranges, or one not understood: the whole file.
    whole = get(ada, a["id"], Range="bytes=0-1,4-5")
    assert (whole.status_code, whole.content) == (200, data)
    # If-Range with another validator: the whole file.
    stale = get(ada, a["id"], Range="bytes=0-1", **{"If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, data)
    fresh = get(ada, a["id"], Range="bytes=0-1", **{"If-Range": f'"{a["sha256"]}"'})
    assert (fresh.status_code, fresh.content) == (206, data[:2])

    etag = f'"{a["sha256"]}"'
    cached = get(ada, a["id"], **{"If-None-Match": f'"nope", {etag}'})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert get(ada, a["id"], **{"If-None-Match": '"nope"'}).status_code == 200


# ------------------------------------------------------------------------ what is taken


def test_the_type_comes_from_the_bytes(register: Callable[..., Account]) -> None:
    ada = register()
    claimed_html = upload(ada, png(), **{"Content-Type": "text/html"})
    assert claimed_html.status_code == 201
    assert claimed_html.json()["content_type"] == "image/png"

    text = uploaded(ada, "hello, wörld\n".encode())
    assert text["content_type"] == "text/plain"
    assert get(ada, text["id"]).headers["content-type"] == "text/plain; charset=utf-8"

    elf = upload(
        ada, b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, **{"Content-Type": "image/png"}
    )
    error = assert_error(elf, 415, "unsupported_media_type")
    assert error["details"]["content_type"] == "application/octet-stream"
    assert_error(upload(ada, b""), 415, "unsupported_media_type")


@pytest.mark.parametrize("settings_changes", [{"upload_allowed_types": ["image/png"]}])
def test_the_allow_list_is_a_setting(register: Callable[..., Account]) -> None:
    ada = register()
    assert upload(ada, png()).status_code == 201
    refused = assert_error(upload(ada, PDF), 415, "unsupported_media_type")
    assert refused["details"] == {"content_type": "application/pdf", "allowed": ["image/png"]}


@pytest.mark.parametrize("settings_changes", [{"upload_max_bytes": 4096}])
def test_the_size_limit_answers_413_without_reading_on(
    register: Callable[..., Account], http: Any, app: App, settings: Settings
) -> None:
    ada = register()
    fits = b"%PDF-" + b"x" * (4096 - 5)
    assert upload(ada, fits).status_code == 201
    too_big = assert_error(upload(ada, fits + b"x"), 413, "request_too_large")
    assert too_big["details"] == {"max": 4096}

    # Streamed without a length: the server stops reading at the limit. Driven through
    # ASGI directly, so that what the app pulls from the body is counted.
    pulled = 0
    chunks = [b"%PDF-" + b"y" * 1019] + [b"y" * 1024] * 99  # 100 KiB in 1 KiB chunks
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < 100}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": UPLOADS,
        "raw_path": UPLOADS.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {ada.client.access_token}".encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    http.blocking_portal.call(app.asgi, scope, receive, send)
    assert answer["status"] == 413
    assert pulled == 5  # 4 KiB fit; the fifth chunk went past the limit: no more read

    # A declared length past the limit is refused before a byte is read.
    pulled = 0
    declared = {
        **scope,
        "state": {},
        "headers": [*scope["headers"], (b"content-length", b"102400")],
    }
    http.blocking_portal.call(app.asgi, declared, receive, send)
    assert (answer["status"], pulled) == (413, 0)
    assert os.listdir(Path(settings.data_dir) / "spool") == []  # nothing left behind


@pytest.mark.parametrize("settings_changes", [{"limit_uploads": 2, "limit_uploads_seconds": 3600}])
def test_uploads_are_rate_limited(register: Callable[..., Account]) -> None:
    ada, bo = register(), register()
    assert upload(ada, png()).status_code == 201
    assert upload(ada, png()).status_code == 201
    refused = upload(ada, png())
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    assert upload(bo, png()).status_code == 201  # per user


# ------------------------------------------------------------------------ who may read


def test_only_the_uploader_and_the_members_read_it(register: Callable[..., Account]) -> None:
    ada, bo, cy = register(), register(), register()
    a = uploaded(ada, png())
    for suffix in ("", "/thumbnail", "/link"):
        assert get(ada, a["id"], suffix).status_code == 200
        assert_error(get(bo, a["id"], suffix), 404, "attachment_not_found")
    assert_error(get(bo, "12345"), 404, "attachment_not_found")
    assert_error(get(bo, "not-an-id"), 404, "attachment_not_found")

    cid = direct(ada, bo)
    sent = send(ada, cid, [a["id"]])
    assert sent.status_code == 201, sent.text
    assert [x["id"] for x in sent.json()["attachments"]] == [a["id"]]
    assert get(bo, a["id"]).content == get(ada, a["id"]).content
    for suffix in ("", "/thumbnail", "/link"):
        assert_error(get(cy, a["id"], suffix), 404, "attachment_not_found")

    # A member who leaves a group no longer reads what was sent there.
    group = ada.client.create_group("pics", [bo.id, cy.id]).id
    g = uploaded(ada, png(color="green"))
    assert send(ada, group, [g["id"]]).status_code == 201
    assert get(cy, g["id"]).status_code == 200
    left = cy.client.raw("DELETE", f"/v1/conversations/{group}/members/{cy.id}")
    assert left.status_code in (200, 204), left.text
    assert_error(get(cy, g["id"]), 404, "attachment_not_found")


def test_a_block_refuses_the_send_and_keeps_the_upload(register: Callable[..., Account]) -> None:
    ada, bo, cy = register(), register(), register()
    cid = direct(ada, bo)
    bo.client.block(ada.id)
    a = uploaded(ada, png())
    assert_error(send(ada, cid, [a["id"]]), 403, "blocked")
    assert_error(get(bo, a["id"]), 404, "attachment_not_found")
    # Nothing was attached: it may go elsewhere.
    assert send(ada, direct(ada, cy), [a["id"]]).status_code == 201
    assert get(cy, a["id"]).status_code == 200


def test_what_a_message_may_carry(register: Callable[..., Account], http: Any) -> None:
    ada, bo = register(), register()
    cid = direct(ada, bo)
    mine = [uploaded(ada, png(5 + i, 5))["id"] for i in range(11)]
    assert_error(send(ada, cid, mine), 422, "too_many_attachments")
    theirs = uploaded(bo, png())["id"]
    refused = assert_error(send(ada, cid, [mine[0], theirs]), 404, "attachment_not_found")
    assert refused["details"]["attachment_ids"] == [theirs]
    assert_error(send(ada, cid, ["nope"]), 404, "attachment_not_found")
    assert_error(send(ada, cid, ["999999"]), 404, "attachment_not_found")

    ten = send(ada, cid, mine[:10])
    assert ten.status_code == 201
    assert [a["id"] for a in ten.json()["attachments"]] == mine[:10]  # in order
    again = assert_error(send(ada, cid, [mine[0]]), 409, "attachment_already_sent")
    assert again["details"]["attachment_ids"] == [mine[0]]
    # A refused send stored nothing: the eleventh is still free.
    assert send(ada, cid, [mine[10]]).status_code == 201

    history = ada.client.raw("GET", f"/v1/conversations/{cid}/messages").json()["items"]
    assert [len(m["attachments"]) for m in history] == [10, 1]
    assert history[0]["attachments"][0]["sha256"] == hashlib.sha256(png(5, 5)).hexdigest()
    events = bo.client.sync(None).items
    created = [e.event for e in events if e.event["type"] == "message.created"]
    assert [len(e["message"]["attachments"]) for e in created] == [10, 1]


# ------------------------------------------------------------------------ gone is gone


def test_deleting_the_message_removes_the_bytes(
    register: Callable[..., Account], http: Any, app: App
) -> None:
    ada, bo = register(), register()
    cid = direct(ada, bo)
    a = uploaded(ada, png(300, 200))
    message = send(ada, cid, [a["id"]]).json()
    assert bo.client.attachment_thumbnail(a["id"], size=64)
    aid = int(a["id"])
    assert stored(http, app, blob_key(aid)) is not None
    assert stored(http, app, thumbnail_key(aid, 64)) is not None

    deleted = bo.client.raw("DELETE", f"/v1/conversations/{cid}/messages/{message['id']}")
    assert deleted.status_code == 403  # not the sender's: nothing changes
    deleted = ada.client.raw("DELETE", f"/v1/conversations/{cid}/messages/{message['id']}")
    assert deleted.status_code in (200, 204), deleted.text
    for who in (ada, bo):
        assert_error(get(who, a["id"]), 404, "attachment_not_found")
        assert_error(get(who, a["id"], "/thumbnail"), 404, "attachment_not_found")
    history = bo.client.raw("GET", f"/v1/conversations/{cid}/messages").json()["items"]
    assert history[-1]["deleted"]
    assert history[-1]["attachments"] == []
    logged = [e.event for e in bo.client.sync(None).items if e.event["type"] == "message.deleted"]
    assert logged
    assert all(e["message"]["attachments"] == [] for e in logged)

    purge(http, app)  # the after-commit purge may still be running: run it to the end
    assert stored(http, app, blob_key(aid)) is None
    assert stored(http, app, thumbnail_key(aid, 64)) is None


def test_expiry_removes_the_bytes(
    register: Callable[..., Account], http: Any, app: App, clock: Clock
) -> None:
    ada, bo = register(), register()
    cid = direct(ada, bo)
    patched = ada.client.raw("PATCH", f"/v1/conversations/{cid}", json={"message_ttl_seconds": 60})
    assert patched.status_code == 200, patched.text
    a = uploaded(ada, PDF)
    assert send(ada, cid, [a["id"]]).status_code == 201
    clock.advance(61)
    assert http.blocking_portal.call(app.wiring.container.messaging.expire_due) == 1
    assert_error(get(bo, a["id"]), 404, "attachment_not_found")
    purge(http, app)
    assert stored(http, app, blob_key(int(a["id"]))) is None


def test_erasing_the_account_removes_its_bytes(
    register: Callable[..., Account], http: Any, app: App
) -> None:
    ada, bo = register(), register()
    cid = direct(ada, bo)
    sent_one = uploaded(ada, png())
    unsent = uploaded(ada, PDF)
    theirs = uploaded(bo, png(color="blue"))
    assert send(ada, cid, [sent_one["id"]]).status_code == 201
    assert send(bo, cid, [theirs["id"]]).status_code == 201

    ada.client.delete_me(ada.password)
    assert_error(get(bo, sent_one["id"]), 404, "attachment_not_found")
    purge(http, app)
    for gone in (sent_one, unsent):
        assert stored(http, app, blob_key(int(gone["id"]))) is None
    # What the others sent stays.
    assert get(bo, theirs["id"]).status_code == 200


def test_uploads_never_sent_are_purged_after_a_day(
    register: Callable[..., Account], http: Any, app: App, clock: Clock
) -> None:
    ada, bo = register(), register()
    kept, dropped = uploaded(ada, png()), uploaded(ada, PDF)
    assert send(ada, direct(ada, bo), [kept["id"]]).status_code == 201
    clock.advance(23 * 3600)
    ada.client.refresh()
    bo.client.refresh()
    assert purge(http, app) == 0
    assert get(ada, dropped["id"]).status_code == 200
    clock.advance(3601)
    ada.client.refresh()
    bo.client.refresh()
    assert purge(http, app) == 1
    assert_error(get(ada, dropped["id"]), 404, "attachment_not_found")
    assert stored(http, app, blob_key(int(dropped["id"]))) is None
    assert get(bo, kept["id"]).status_code == 200
    # Too late to send it, too.
    assert_error(send(ada, direct(ada, bo), [dropped["id"]]), 404, "attachment_not_found")


# ------------------------------------------------------------------------ thumbnails, links


def test_thumbnails(register: Callable[..., Account], http: Any, app: App) -> None:
    ada = register()
    a = uploaded(ada, png(600, 300))
    response = get(ada, a["id"], "/thumbnail?size=100")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "WEBP"
        assert image.size == (128, 64)  # rounded up to 128, the aspect kept
    assert stored(http, app, thumbnail_key(int(a["id"]), 128)) == response.content  # cached
    again = get(ada, a["id"], "/thumbnail?size=128")
    assert again.content == response.content
    etag = response.headers["etag"]
    assert get(ada, a["id"], "/thumbnail?size=128", **{"If-None-Match": etag}).status_code == 304

    assert_error(get(ada, uploaded(ada, PDF)["id"], "/thumbnail"), 404, "thumbnail_unavailable")
    assert get(ada, a["id"], "/thumbnail?size=0").status_code == 422
    assert get(ada, a["id"], "/thumbnail?size=5000").status_code == 422


def test_presigned_links_where_the_store_makes_them(
    register: Callable[..., Account], stack: str, http: Any, app: App
) -> None:
    ada = register()
    data = png(12, 12)
    a = uploaded(ada, data, filename="dot.png")
    link = ada.client.attachment_link(a["id"])
    if stack == "sqlite":  # files: no presigned URLs, download through socius
        assert link.url is None
        assert link.expires_at is None
        return
    assert link.url is not None
    assert link.expires_at is not None
    direct_get = httpx.get(link.url)
    assert direct_get.status_code == 200, direct_get.text
    assert direct_get.content == data
    # A tampered signature is refused by the store.
    assert httpx.get(link.url.replace("X-Amz-Expires=300", "X-Amz-Expires=999")).status_code == 403
