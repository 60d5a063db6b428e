"""The graph's rules as pure plans: what each action adds, removes and announces."""

from __future__ import annotations

import pytest

from socius.domain.errors import Forbidden, InvalidInput, NotFound
from socius.domain.graph import (
    INVERSE,
    EdgeType,
    Plan,
    Relationship,
    check_not_self,
    plan_accept_friend,
    plan_approve_follow,
    plan_block,
    plan_cancel_friend_request,
    plan_decline_friend,
    plan_follow,
    plan_friend_request,
    plan_mute,
    plan_reject_follow,
    plan_unblock,
    plan_unfollow,
    plan_unfriend,
    plan_unmute,
)

E = EdgeType
OTHER = 42


def rel(*types: EdgeType) -> Relationship:
    return Relationship(OTHER, frozenset(types))


def apply(before: Relationship, plan: Plan) -> Relationship:
    return Relationship(before.user_id, (before.edges - set(plan.remove)) | set(plan.add))


def follow_public(r: Relationship) -> Plan:
    return plan_follow(r, other_is_private=False)


def follow_private(r: Relationship) -> Plan:
    return plan_follow(r, other_is_private=True)


# Every planner, with a state in which it changes something.
ACTIVE = [
    (plan_friend_request, rel()),
    (plan_friend_request, rel(E.REQUEST_IN)),
    (plan_accept_friend, rel(E.REQUEST_IN)),
    (plan_decline_friend, rel(E.REQUEST_IN)),
    (plan_cancel_friend_request, rel(E.REQUEST_OUT)),
    (plan_unfriend, rel(E.FRIEND)),
    (follow_public, rel()),
    (follow_private, rel()),
    (plan_unfollow, rel(E.FOLLOWS)),
    (plan_unfollow, rel(E.FOLLOW_REQUEST_OUT)),
    (plan_approve_follow, rel(E.FOLLOW_REQUEST_IN)),
    (plan_reject_follow, rel(E.FOLLOW_REQUEST_IN)),
    (plan_block, rel(E.FRIEND, E.FOLLOWS, E.FOLLOWED_BY)),
    (plan_unblock, rel(E.BLOCKS)),
    (plan_mute, rel()),
    (plan_unmute, rel(E.MUTES)),
]


def _ids(case: object) -> str:
    return getattr(case, "__name__", "") or repr(case)


@pytest.mark.parametrize(("planner", "before"), ACTIVE, ids=_ids)
def test_every_plan_changes_state_once_then_is_idempotent(planner, before) -> None:
    first = planner(before)
    assert not first.changes_nothing
    after = apply(before, first)
    assert after != before
    again = planner(after)
    assert again.changes_nothing, (planner, after.edges, again)
    assert again.events == ()


@pytest.mark.parametrize(("planner", "before"), ACTIVE, ids=_ids)
def test_plans_only_remove_what_is_there_and_add_what_is_not(planner, before) -> None:
    plan = planner(before)
    assert set(plan.remove) <= before.edges
    assert not set(plan.add) & before.edges
    assert not set(plan.add) & set(plan.remove)


def test_friend_request_is_sent_and_announced_to_the_other() -> None:
    plan = plan_friend_request(rel())
    assert plan == Plan(add=(E.REQUEST_OUT,), events=(("friend.request", "other"),))


def test_friend_request_to_someone_who_asked_you_makes_friends() -> None:
    plan = plan_friend_request(rel(E.REQUEST_IN, E.FOLLOWS))
    assert plan.add == (E.FRIEND,)
    assert plan.remove == (E.REQUEST_IN,)
    assert plan.events == (("friend.accepted", "other"),)
    assert apply(rel(E.REQUEST_IN, E.FOLLOWS), plan).edges == {E.FRIEND, E.FOLLOWS}


@pytest.mark.parametrize("state", [rel(E.FRIEND), rel(E.REQUEST_OUT), rel(E.FRIEND, E.MUTES)])
def test_friend_request_when_already_friends_or_pending_is_a_no_op(state) -> None:
    assert plan_friend_request(state).changes_nothing
    assert plan_friend_request(state).events == ()


def test_accept_makes_friends_and_announces_it() -> None:
    plan = plan_accept_friend(rel(E.REQUEST_IN))
    assert plan == Plan(
        add=(E.FRIEND,), remove=(E.REQUEST_IN,), events=(("friend.accepted", "other"),)
    )
    assert plan_accept_friend(rel(E.FRIEND)).changes_nothing


@pytest.mark.parametrize("state", [rel(), rel(E.REQUEST_OUT), rel(E.BLOCKS), rel(E.BLOCKED_BY)])
def test_accept_without_an_incoming_request_is_not_found(state) -> None:
    with pytest.raises(NotFound) as info:
        plan_accept_friend(state)
    assert info.value.code == "friend_request_not_found"


@pytest.mark.parametrize("state", [rel(), rel(E.REQUEST_OUT), rel(E.FRIEND)])
def test_decline_without_a_request_is_a_no_op(state) -> None:
    assert plan_decline_friend(state).changes_nothing


def test_decline_and_cancel_remove_only_their_own_side() -> None:
    both = rel(E.REQUEST_IN, E.FOLLOWS)
    assert plan_decline_friend(both) == Plan(remove=(E.REQUEST_IN,))
    assert plan_cancel_friend_request(rel(E.REQUEST_OUT, E.MUTES)) == Plan(remove=(E.REQUEST_OUT,))
    assert plan_cancel_friend_request(rel(E.REQUEST_IN)).changes_nothing
    assert plan_unfriend(rel(E.REQUEST_IN)).changes_nothing


def test_unfriend_keeps_follows() -> None:
    before = rel(E.FRIEND, E.FOLLOWS, E.FOLLOWED_BY)
    assert apply(before, plan_unfriend(before)).edges == {E.FOLLOWS, E.FOLLOWED_BY}


def test_follow_a_public_account() -> None:
    assert follow_public(rel()) == Plan(add=(E.FOLLOWS,), events=(("follow.new", "other"),))


def test_following_a_private_account_is_a_request() -> None:
    plan = follow_private(rel())
    assert plan.add == (E.FOLLOW_REQUEST_OUT,)
    assert E.FOLLOWS not in plan.add
    assert [t for t, _ in plan.events] == ["follow.request"]


@pytest.mark.parametrize("private", [False, True])
@pytest.mark.parametrize("state", [rel(E.FOLLOWS), rel(E.FOLLOW_REQUEST_OUT)])
def test_follow_when_following_or_requested_is_a_no_op(state, private) -> None:
    assert plan_follow(state, other_is_private=private).changes_nothing


def test_unfollow_withdraws_a_pending_request_too() -> None:
    assert plan_unfollow(rel(E.FOLLOW_REQUEST_OUT)).remove == (E.FOLLOW_REQUEST_OUT,)
    assert plan_unfollow(rel(E.FOLLOWS, E.FOLLOWED_BY)).remove == (E.FOLLOWS,)
    assert plan_unfollow(rel(E.FOLLOWED_BY)).changes_nothing


def test_approve_follow_adds_a_follower_and_tells_both() -> None:
    plan = plan_approve_follow(rel(E.FOLLOW_REQUEST_IN))
    assert plan.add == (E.FOLLOWED_BY,)
    assert plan.remove == (E.FOLLOW_REQUEST_IN,)
    assert set(plan.events) == {("follow.accepted", "other"), ("follow.new", "actor")}
    assert plan_approve_follow(rel(E.FOLLOWED_BY)).changes_nothing


@pytest.mark.parametrize("state", [rel(), rel(E.FOLLOW_REQUEST_OUT), rel(E.FOLLOWS)])
def test_approve_without_a_request_is_not_found(state) -> None:
    with pytest.raises(NotFound) as info:
        plan_approve_follow(state)
    assert info.value.code == "follow_request_not_found"


def test_reject_follow() -> None:
    assert plan_reject_follow(rel(E.FOLLOW_REQUEST_IN)) == Plan(remove=(E.FOLLOW_REQUEST_IN,))
    assert plan_reject_follow(rel(E.FOLLOWED_BY)).changes_nothing


REACHING = [plan_friend_request, follow_public, follow_private]


@pytest.mark.parametrize("planner", REACHING, ids=_ids)
def test_the_blocked_side_cannot_reach_the_blocker_and_does_not_learn_why(planner) -> None:
    with pytest.raises(NotFound) as info:
        planner(rel(E.BLOCKED_BY))
    assert info.value.code == "user_not_found"
    with pytest.raises(NotFound):  # blocked both ways: still "does not exist"
        planner(rel(E.BLOCKED_BY, E.BLOCKS))


@pytest.mark.parametrize("planner", REACHING, ids=_ids)
def test_the_blocker_is_told_to_unblock_first(planner) -> None:
    with pytest.raises(Forbidden) as info:
        planner(rel(E.BLOCKS))
    assert info.value.code == "blocked"


def test_block_ends_everything_both_ways_but_mutes() -> None:
    everything = rel(
        E.FRIEND,
        E.FOLLOWS,
        E.FOLLOWED_BY,
        E.REQUEST_OUT,
        E.FOLLOW_REQUEST_OUT,
        E.FOLLOW_REQUEST_IN,
        E.MUTES,
    )
    plan = plan_block(everything)
    assert plan.add == (E.BLOCKS,)
    assert plan.events == ()
    assert apply(everything, plan).edges == {E.BLOCKS, E.MUTES}
    assert apply(rel(E.REQUEST_IN), plan_block(rel(E.REQUEST_IN))).edges == {E.BLOCKS}


def test_block_is_idempotent_and_can_be_mutual() -> None:
    assert plan_block(rel(E.BLOCKS)).changes_nothing
    assert plan_block(rel(E.BLOCKS, E.BLOCKED_BY)).changes_nothing
    assert plan_block(rel(E.BLOCKED_BY)) == Plan(add=(E.BLOCKS,))


def test_unblock_restores_nothing_and_leaves_the_other_sides_block() -> None:
    assert plan_unblock(rel(E.BLOCKS, E.BLOCKED_BY)) == Plan(remove=(E.BLOCKS,))
    assert plan_unblock(rel(E.BLOCKED_BY)).changes_nothing
    assert plan_unblock(rel()).changes_nothing


def test_mute_and_unmute() -> None:
    assert plan_mute(rel(E.FRIEND)) == Plan(add=(E.MUTES,))
    assert plan_mute(rel(E.MUTES)).changes_nothing
    assert plan_unmute(rel(E.MUTES)) == Plan(remove=(E.MUTES,))
    assert plan_unmute(rel()).changes_nothing
    # Muting does not reach across a block any differently: it is private to the muter.
    assert plan_mute(rel(E.BLOCKED_BY)) == Plan(add=(E.MUTES,))


@pytest.mark.parametrize(
    "planner",
    [
        plan_decline_friend,
        plan_cancel_friend_request,
        plan_unfriend,
        plan_unfollow,
        plan_reject_follow,
        plan_unblock,
        plan_unmute,
    ],
    ids=_ids,
)
def test_undoing_nothing_is_a_no_op_and_never_raises(planner) -> None:
    states = [rel(), rel(E.BLOCKED_BY)]
    if planner is not plan_unblock:
        states.append(rel(E.BLOCKS))
    for state in states:
        assert planner(state).changes_nothing


def test_inverse_is_an_involution_and_mutes_are_one_sided() -> None:
    for t, inv in INVERSE.items():
        if inv is None:
            assert t is E.MUTES
        else:
            assert INVERSE[inv] is t
    assert set(INVERSE) == set(EdgeType)


def test_cannot_target_self() -> None:
    with pytest.raises(InvalidInput) as info:
        check_not_self(7, 7)
    assert info.value.code == "cannot_target_self"
    check_not_self(7, 8)


def test_relationship_flags_read_the_edges() -> None:
    r = rel(E.FOLLOW_REQUEST_IN, E.BLOCKED_BY)
    assert r.follow_request_received
    assert r.blocked_by
    assert r.blocked_either_way
    assert not (r.friend)
    assert not (r.following)
    assert not (r.blocking)
    assert not (r.muting)
