"""The notification centre: notify() rules, coalescing (also under concurrency), the REST
reads, marking read, and the events every change emits."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import delete, func, select, update

from models.base import utcnow
from models.platform import OutboxMessage
from models.realtime import Notification
from models.users import User, UserSettings
from pawhome.identity import users
from pawhome.messaging import notifications
from tests.event_contract import assert_events_valid, capture_events, types_of


async def make_user(resources, nickname: str = "", prefs: dict | None = None) -> int:
    async with resources.db.session() as session, session.begin():
        user = User(openid="t-" + uuid.uuid4().hex[:24], nickname=nickname or "u" +
                    uuid.uuid4().hex[:6], role="user", status="active")
        session.add(user)
        await session.flush()
        session.add(UserSettings(user_id=user.id, notification_prefs=prefs or {},
                                 privacy_prefs={}))
        return user.id


async def notify(resources, *args, **kwargs):
    async with resources.db.session() as session, session.begin():
        row = await notifications.notify(session, *args, **kwargs)
        return None if row is None else row.id


async def rows_of(resources, user_id: int) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id).order_by(Notification.id))).scalars())


async def like(resources, owner: int, actor: int, post_id: int = 123):
    return await notify(resources, owner, "like", "post_liked", actor_id=actor,
                        target_type="post", target_id=post_id, group_key=f"like:post:{post_id}")


# -- who gets notified ----------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_own_action_and_blocked_actors_notify_nobody(resources):
    owner, fan, blocked, blocker = [await make_user(resources) for _ in range(4)]
    async with resources.db.session() as session, session.begin():
        await users.block_user(session, resources.cache, owner, blocked)  # the owner blocked someone
        await users.block_user(session, resources.cache, blocker, owner)  # someone blocked the owner
    assert await like(resources, owner, owner) is None
    assert await like(resources, owner, blocked) is None
    assert await like(resources, blocker, owner) is None
    assert await like(resources, owner, fan) is not None
    assert len(await rows_of(resources, owner)) == 1
    assert await rows_of(resources, blocker) == []


@pytest.mark.gen_test(timeout=30)
async def test_unknown_category_is_a_programming_error(resources):
    owner = await make_user(resources)
    with pytest.raises(ValueError):
        await notify(resources, owner, "gossip", "x")


@pytest.mark.gen_test(timeout=30)
async def test_switched_off_category_is_stored_without_alert_or_push(resources):
    owner = await make_user(resources, prefs={"likes": False})
    fan = await make_user(resources)
    async with resources.db.session() as session, session.begin():
        row = await notifications.notify(session, owner, "like", "post_liked", actor_id=fan,
                                         target_type="post", target_id=1)
        queued = (await session.execute(select(OutboxMessage).where(
            OutboxMessage.id > 0))).scalars().all()
        mine = [r for r in queued if r.kind == "event" and r.name == f"ws:user:{owner}"]
        pushes = [r for r in queued if r.name == "notify.send_subscribe_message"
                  and r.payload["args"][0] == owner]
    assert row is not None and mine and mine[-1].payload["data"]["alert"] is False
    assert pushes == []


@pytest.mark.gen_test(timeout=30)
async def test_category_with_a_template_queues_a_push_when_switched_on(resources):
    owner, fan = await make_user(resources), await make_user(resources)
    async with resources.db.session() as session, session.begin():
        row = await notifications.notify(session, owner, "comment", "post_commented",
                                         actor_id=fan, target_type="post", target_id=5,
                                         payload={"excerpt": "cute!"})
        pushes = [r for r in (await session.execute(select(OutboxMessage))).scalars()
                  if r.name == "notify.send_subscribe_message"
                  and r.payload["args"][0] == owner]
    assert len(pushes) == 1
    assert pushes[0].payload["args"][1] == "notification:comment"
    assert pushes[0].payload["kwargs"]["notification_id"] == row.id
    # The grace period is the task's countdown.
    assert pushes[0].available_at > utcnow() + dt.timedelta(seconds=30)


# -- coalescing -----------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_likes_on_one_post_coalesce_most_recent_actor_first(resources):
    owner = await make_user(resources)
    alice = await make_user(resources, "Alice")
    bob = await make_user(resources, "Bob")
    carol = await make_user(resources, "Carol")
    first = await like(resources, owner, alice)
    assert await like(resources, owner, bob) == first
    assert await like(resources, owner, alice) == first  # a repeat actor is counted once
    assert await like(resources, owner, carol) == first
    [row] = await rows_of(resources, owner)
    assert row.actor_ids == [carol, alice, bob] and row.actor_count == 3
    assert row.updated_at > row.created_at
    async with resources.db.session() as session:
        [shape] = await notifications.public_shapes(session, [row])
    assert shape["text"] == "Carol and 2 others liked your post"
    assert [a["nickname"] for a in shape["actors"]] == ["Carol", "Alice", "Bob"]
    # Another post is another group.
    assert await like(resources, owner, bob, post_id=999) != first


@pytest.mark.gen_test(timeout=30)
async def test_a_read_or_stale_group_is_not_reopened(resources):
    owner, a, b, c = [await make_user(resources) for _ in range(4)]
    first = await like(resources, owner, a)
    await notifications.mark_read(resources, owner, first)
    second = await like(resources, owner, b)
    assert second != first
    # Two hours later the window (NOTIFY_COALESCE_SECONDS, 1 h) has passed.
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Notification).where(Notification.id == second).values(
            updated_at=utcnow() - dt.timedelta(hours=2)))
    third = await like(resources, owner, c)
    assert third not in (first, second)
    assert [r.actor_count for r in await rows_of(resources, owner)] == [1, 1, 1]


@pytest.mark.gen_test(timeout=60)
async def test_actor_list_is_capped_but_count_keeps_growing(resources):
    owner = await make_user(resources)
    actors = [await make_user(resources) for _ in range(13)]
    for actor in actors:
        await like(resources, owner, actor)
    [row] = await rows_of(resources, owner)
    assert row.actor_count == 13
    assert row.actor_ids == list(reversed(actors))[:notifications.MAX_ACTORS_SHOWN]


@pytest.mark.gen_test(timeout=120)
async def test_hundred_concurrent_likers_make_one_notification(resources):
    owner = await make_user(resources, "Owner")
    likers = [await make_user(resources, f"fan{i}") for i in range(100)]
    ids = await asyncio.gather(*(like(resources, owner, liker, post_id=77) for liker in likers))
    rows = await rows_of(resources, owner)
    assert len(rows) == 1, [r.actor_count for r in rows]
    assert set(ids) == {rows[0].id}
    assert rows[0].actor_count == 100
    assert len(rows[0].actor_ids) == notifications.MAX_ACTORS_SHOWN
    assert len(set(rows[0].actor_ids)) == notifications.MAX_ACTORS_SHOWN
    # No relay runs in this test: drop its 100 undelivered events rather than leave a
    # backlog for the next test's relay.
    async with resources.db.session() as session, session.begin():
        await session.execute(delete(OutboxMessage).where(
            OutboxMessage.name == f"ws:user:{owner}"))


def test_actor_phrases_read_naturally():
    assert notifications.actors_phrase(["A"], 1) == "A"
    assert notifications.actors_phrase(["A", "B"], 2) == "A and B"
    assert notifications.actors_phrase(["A", "B"], 3) == "A and 2 others"
    assert notifications.actors_phrase(["A"], 100) == "A and 99 others"
    assert notifications.actors_phrase([""], 1) == "Someone"
    assert notifications.render_text("follow", "", {}, ["Zoe"], 1) == "Zoe followed you"
    assert notifications.render_text("order", "order", {"text": "Shipped"}, [], 0) == "Shipped"


# -- REST ---------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_admin_sends_a_system_notification_the_user_lists_and_reads(api):
    admin = await api.login(role="admin")
    me = await api.login()
    stranger = await api.login()
    (await api.post("/v1/admin/notifications",
                    json={"user_id": me.user_id, "title": "Hi", "body": "y"},
                    token=me.token)).error(403)
    (await api.post("/v1/admin/notifications",
                    json={"user_id": 10**15, "title": "Hi", "body": "y"},
                    token=admin.token)).error(404)
    created = (await api.post("/v1/admin/notifications",
                              json={"user_id": me.user_id, "title": "Welcome 🐾",
                                    "body": "Your pet card is ready"},
                              token=admin.token)).ok(201)
    assert created["category"] == "system" and created["text"] == "Welcome 🐾"
    assert created["actors"] == [] and created["read"] is False

    listed = (await api.get("/v1/notifications", token=me.token)).ok()
    assert [n["id"] for n in listed["items"]] == [created["id"]]
    assert listed["items"][0]["payload"] == {"title": "Welcome 🐾",
                                             "body": "Your pet card is ready"}
    counts = (await api.get("/v1/notifications/unread-count", token=me.token)).ok()
    assert counts["total"] == 1 and counts["by_category"]["system"] == 1
    assert counts["by_category"]["like"] == 0

    # Someone else's notification does not exist for them.
    (await api.post(f"/v1/notifications/{created['id']}/read", token=stranger.token)).error(404)
    assert (await api.get("/v1/notifications", token=stranger.token)).ok()["items"] == []
    (await api.post("/v1/notifications/99999999999/read", token=me.token)).error(404)

    read = (await api.post(f"/v1/notifications/{created['id']}/read", token=me.token)).ok()
    assert read["updated"] == 1 and read["unread"]["total"] == 0
    again = (await api.post(f"/v1/notifications/{created['id']}/read", token=me.token)).ok()
    assert again["updated"] == 0
    assert (await api.get("/v1/notifications", token=me.token)).ok()["items"][0]["read"] is True


@pytest.mark.gen_test(timeout=60)
async def test_list_filters_by_category_and_pages_by_cursor(api, resources):
    me = await api.login()
    actors = [await make_user(resources) for _ in range(5)]
    for i, actor in enumerate(actors):
        await notify(resources, me.user_id, "follow", "followed", actor_id=actor)
        await like(resources, me.user_id, actor, post_id=1000 + i)
    seen, cursor = [], None
    while True:
        query = "?category=follow&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get("/v1/notifications" + query, token=me.token)).ok()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 5 and {n["category"] for n in seen} == {"follow"}
    assert len({n["id"] for n in seen}) == 5
    stamps = [(n["updated_at"], n["id"]) for n in seen]
    assert stamps == sorted(stamps, reverse=True)
    everything = (await api.get("/v1/notifications?limit=100", token=me.token)).ok()
    assert len(everything["items"]) == 10
    (await api.get("/v1/notifications?category=gossip", token=me.token)).error(422,
                                                                              field="category")
    (await api.get("/v1/notifications?cursor=!!notacursor", token=me.token)).error(
        422, field="cursor")
    (await api.get("/v1/notifications?cursor=eyJ1IjogMX0", token=me.token)).error(
        422, field="cursor")


@pytest.mark.gen_test(timeout=60)
async def test_mark_a_category_then_everything_read(api, resources):
    me = await api.login()
    fan = await make_user(resources)
    await like(resources, me.user_id, fan)
    await notify(resources, me.user_id, "follow", "followed", actor_id=fan)
    await notify(resources, me.user_id, "order", "order_shipped", target_type="order",
                 target_id=9, payload={"text": "Your order shipped"})
    done = (await api.post("/v1/notifications/read", json={"category": "like"},
                           token=me.token)).ok()
    assert done["updated"] == 1
    assert done["unread"]["total"] == 2 and done["unread"]["by_category"]["like"] == 0
    (await api.post("/v1/notifications/read", json={"category": "nope"},
                    token=me.token)).error(422, field="category")
    done = (await api.post("/v1/notifications/read", token=me.token)).ok()
    assert done["updated"] == 2 and done["unread"]["total"] == 0
    counts = (await api.get("/v1/notifications/unread-count", token=me.token)).ok()
    assert counts["total"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_notification_endpoints_need_a_login(api):
    (await api.get("/v1/notifications")).error(401)
    (await api.get("/v1/notifications/unread-count")).error(401)
    (await api.post("/v1/notifications/read")).error(401)


# -- events ---------------------------------------------------------------------------------------


def _apply(state: dict, events: list[dict]) -> dict:
    """What a client does with notify.* events to its list and badge."""
    items = {n["id"]: dict(n) for n in state["items"]}
    counts = state["unread"]
    for event in events:
        data = dict(event["data"])
        if event["type"] in ("notify.new", "notify.updated"):
            data.pop("alert")
            items[data["id"]] = data
            if event["type"] == "notify.new" and not data["read"]:
                counts = {"total": counts["total"] + 1, "by_category": {
                    **counts["by_category"],
                    data["category"]: counts["by_category"][data["category"]] + 1}}
        elif event["type"] == "notify.read":
            for item in items.values():
                if data["all"] or item["category"] == data["category"] or \
                        item["id"] in (data["ids"] or []):
                    item["read"] = True
            counts = data["unread"]
    ordered = sorted(items.values(), key=lambda n: (n["updated_at"], n["id"]), reverse=True)
    return {"items": ordered, "unread": counts}


async def _state(api, token: str) -> dict:
    return {"items": (await api.get("/v1/notifications?limit=100", token=token)).ok()["items"],
            "unread": (await api.get("/v1/notifications/unread-count", token=token)).ok()}


@pytest.mark.gen_test(timeout=60)
async def test_events_replay_the_notification_centre_exactly(api, app, resources):
    me = await api.login()
    admin = await api.login(role="admin")
    a, b = await make_user(resources, "A"), await make_user(resources, "B")
    await notify(resources, me.user_id, "follow", "followed", actor_id=a)
    async with capture_events(app, me.user_id) as captured:
        before = await _state(api, me.token)
        await like(resources, me.user_id, a)
        await like(resources, me.user_id, b)
        (await api.post("/v1/admin/notifications", json={
            "user_id": me.user_id, "title": "T", "body": "B"}, token=admin.token)).ok(201)
        (await api.post("/v1/notifications/read", json={"category": "follow"},
                        token=me.token)).ok()
    events = await captured.events()
    assert types_of(events) == ["notify.new", "notify.updated", "notify.new", "notify.read"]
    assert_events_valid(events)
    assert events[1]["data"]["actor_count"] == 2
    assert events[1]["data"]["text"] == "B and A liked your post"
    after = await _state(api, me.token)
    assert _apply(before, events) == after

    async with capture_events(app, me.user_id) as captured:
        target = after["items"][0]["id"]
        (await api.post(f"/v1/notifications/{target}/read", token=me.token)).ok()
        (await api.post(f"/v1/notifications/{target}/read", token=me.token)).ok()  # no-op
        (await api.post("/v1/notifications/read", token=me.token)).ok()
        (await api.post("/v1/notifications/read", token=me.token)).ok()  # nothing left
    events = await captured.events()
    assert types_of(events) == ["notify.read", "notify.read"]
    assert events[0]["data"]["ids"] == [target] and events[1]["data"]["all"] is True
    assert_events_valid(events)
    assert _apply(after, events) == await _state(api, me.token)


@pytest.mark.gen_test(timeout=30)
async def test_rolled_back_like_leaves_no_notification_and_no_event(resources):
    owner, fan = await make_user(resources), await make_user(resources)
    with pytest.raises(RuntimeError):
        async with resources.db.session() as session, session.begin():
            await notifications.notify(session, owner, "like", "post_liked", actor_id=fan,
                                       group_key="like:post:1")
            raise RuntimeError("the like failed after notifying")
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.name == f"ws:user:{owner}"))).scalar_one() == 0
    assert await rows_of(resources, owner) == []
