"""The list renderer of the REST transport (decision 0039): a page joined from each user's
kept JSON is byte for byte what msgspec encodes for the page's view, and a changed
profile is never shown from what was kept for its old value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from socius.api.rest.graph_views import ListBodies, user_list_out
from socius.services.graph import EdgePage, ListedUser
from socius.services.profiles import Profile

_encode = msgspec.json.Encoder().encode
T0 = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)


def profile(user_id: int, **changes: object) -> Profile:
    fields: dict[str, object] = {
        "id": user_id,
        "username": f"user{user_id}",
        "display_name": f'Ünïcode "quoted" \\ {user_id}',
        "bio": "line\nbreak",
        "avatar_url": None if user_id % 2 else f"https://example.com/{user_id}.png",
        "is_private": bool(user_id % 3 == 0),
        "created_at": T0 - timedelta(days=user_id, microseconds=user_id),
        "friends_count": user_id,
        "followers_count": 2 * user_id,
        "following_count": 0,
    }
    fields.update(changes)
    return Profile(**fields)  # type: ignore[arg-type]


def page(profiles: list[Profile], cursor: str | None) -> EdgePage:
    return EdgePage(
        [ListedUser(p, T0 - timedelta(seconds=i)) for i, p in enumerate(profiles)], cursor
    )


def test_a_page_is_the_bytes_its_view_encodes_to() -> None:
    render = ListBodies()
    for shown in (
        page([], None),
        page([profile(1)], "abc"),
        page([profile(i) for i in range(50)], None),
    ):
        assert render(shown) == _encode(user_list_out(shown))
        assert render(shown) == _encode(user_list_out(shown))  # from what it kept


def test_a_changed_profile_is_encoded_again() -> None:
    render = ListBodies()
    before = page([profile(1), profile(2)], None)
    assert b'"friends_count":2' in render(before)
    after = page([profile(1), profile(2, friends_count=3, display_name="Renamed")], None)
    body = render(after)
    assert body == _encode(user_list_out(after))
    assert b"Renamed" in body
    assert b'"friends_count":3' in body
