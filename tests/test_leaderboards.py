"""Leaderboards: ranks by the best pet (ties to whoever got there first), points earned, the
friends board, weekly boards, my rank and my neighbours, privacy, updates through the outbox
and a real worker, and the rebuild that heals a Redis that lost the boards. The boards are
shared by every test of the run, so tests compare their own users' relative ranks.
Real MariaDB, Redis and Celery worker; nothing of ours mocked."""
from __future__ import annotations

import datetime as dt

import pytest

from models.base import utcnow
from models.virtual_pets import PetInteraction
from pawhome.virtualpet import care, leaderboards
from tests.fixtures_worker import wait_until
from tests.leaderboard_support import ranks
from tests.mall_support import make_member
from tests.points_support import default_rules  # noqa: F401  (fixture)
from tests.virtualpet_support import make_pet, pet_row

# Experience far above what other tests give, so nobody else sits between these users.
HIGH = 50_000_000


def key(resources, board: str, period: str = "all") -> str:
    return leaderboards.board_key(resources.cache, board, period, utcnow())


def test_scores_put_the_higher_number_first_then_who_reached_it_first():
    early, late = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, 0, 1)
    assert leaderboards.encode(10, late) > leaderboards.encode(9, early)
    assert leaderboards.encode(10, early) > leaderboards.encode(10, late)
    top = leaderboards.encode(leaderboards.PRIMARY_MAX, dt.datetime(2150, 1, 1))
    assert top < 2 ** 53 and float(top) == top  # exact as a double
    assert leaderboards.primary_of(float(top)) == leaderboards.PRIMARY_MAX
    assert leaderboards.primary_of(float(leaderboards.encode(1234, late))) == 1234
    # ISO weeks in Asia/Shanghai: Sunday 23:30 local is still the old week.
    sunday_night = dt.datetime(2026, 12, 6, 15, 30)  # 23:30 Shanghai, Sunday
    assert leaderboards.week_label(sunday_night) == "2026W49"
    assert leaderboards.week_label(sunday_night + dt.timedelta(hours=1)) == "2026W50"
    assert leaderboards.week_bounds(sunday_night)[1] == dt.datetime(2026, 12, 6, 16, 0)


@pytest.mark.gen_test(timeout=60)
async def test_pet_board_ranks_and_ties_with_my_rank_and_neighbours(api, resources):
    people = [await api.login() for _ in range(4)]
    a, b, c, d = people
    t0 = utcnow() - dt.timedelta(hours=2)
    later = t0 + dt.timedelta(hours=1)
    await make_pet(resources, a.user_id, level=9, exp=HIGH, exp_reached_at=later)
    await make_pet(resources, b.user_id, level=9, exp=HIGH, exp_reached_at=t0)  # there first
    await make_pet(resources, c.user_id, level=9, exp=HIGH + 1, exp_reached_at=later)
    await make_pet(resources, c.user_id, level=2, exp=5, name="小弟")  # not c's best
    for person in people:
        await leaderboards.refresh_user(resources, person.user_id, ["pet_level"])
    r_a, r_b, r_c, r_d = await ranks(resources, key(resources, "pet_level"),
                                     [p.user_id for p in people])
    assert r_d is None  # no pet, not ranked
    assert r_a is not None and r_b is not None and r_c is not None
    assert (r_b, r_a) == (r_c + 1, r_c + 2)

    board = (await api.get("/v1/leaderboards/pet_level?limit=3", token=a.token)).ok()
    assert board["my_rank"] == r_a + 1 and board["me"]["user"]["id"] == a.user_id
    around = [item["user"]["id"] for item in board["around"]]
    assert around[around.index(a.user_id) - 2:around.index(a.user_id) + 1] == \
        [c.user_id, b.user_id, a.user_id]
    mine = board["me"]
    assert mine["score"] == HIGH and mine["pet"]["level"] == 9 and mine["pet"]["name"] == "团子"
    assert set(mine["user"]) == {"id", "nickname", "avatar_url"}
    c_item = next(i for i in board["around"] if i["user"]["id"] == c.user_id)
    assert c_item["pet"]["exp"] == HIGH + 1  # the best pet is shown
    assert board["total"] >= 3 and len(board["items"]) <= 3
    assert [i["rank"] for i in board["items"]] == list(range(1, len(board["items"]) + 1))
    nobody = (await api.get("/v1/leaderboards/pet_level", token=d.token)).ok()
    assert nobody["my_rank"] is None and nobody["me"] is None and nobody["around"] == []

    (await api.get("/v1/leaderboards/gold", token=a.token)).error(404)
    (await api.get("/v1/leaderboards/pet_level?period=month", token=a.token)).error(
        422, field="period")
    (await api.get("/v1/leaderboards/pet_level?limit=1000", token=a.token)).error(
        422, field="limit")
    (await api.get("/v1/leaderboards/pet_level")).error(401)


@pytest.mark.gen_test(timeout=60)
async def test_weekly_pet_board_counts_experience_gained_this_week(api, resources):
    me, other = await api.login(), await api.login()
    pet_id = await make_pet(resources, me.user_id, level=3, exp=300)
    other_pet_id = await make_pet(resources, other.user_id, level=3, exp=300)
    now = utcnow()
    start, _end = leaderboards.week_bounds(now)
    async with resources.db.session() as session, session.begin():
        for pet, user_id, exp, at in (
                (pet_id, me.user_id, HIGH, max(start, now - dt.timedelta(minutes=5))),
                (pet_id, me.user_id, 7, max(start, now - dt.timedelta(minutes=4))),
                (other_pet_id, other.user_id, HIGH + 100, start - dt.timedelta(minutes=1))):
            session.add(PetInteraction(pet_id=pet, user_id=user_id, type="training",
                                       changes={}, exp_gained=exp, level_after=3,
                                       created_at=at))
    for person in (me, other):
        await leaderboards.refresh_user(resources, person.user_id, ["pet_level"])
    week = (await api.get("/v1/leaderboards/pet_level?period=week", token=me.token)).ok()
    assert week["week"] == leaderboards.week_label(utcnow())
    assert week["me"]["score"] == HIGH + 7
    assert other.user_id not in {i["user"]["id"] for i in week["around"]}
    other_week = (await api.get("/v1/leaderboards/pet_level?period=week",
                                token=other.token)).ok()
    assert other_week["my_rank"] is None  # last week's experience does not count


@pytest.mark.gen_test(timeout=60)
async def test_friends_board_is_the_people_i_follow_and_me(api, resources):
    me, friend, stranger, petless = [await api.login() for _ in range(4)]
    for person, exp in ((me, 100), (friend, 200), (stranger, 10**6)):
        await make_pet(resources, person.user_id, level=2, exp=exp)
        await leaderboards.refresh_user(resources, person.user_id, ["pet_level"])
    for person in (friend, petless):
        (await api.post(f"/v1/users/{person.user_id}/follow", token=me.token)).ok()
    board = (await api.get("/v1/leaderboards/friends", token=me.token)).ok()
    assert [(i["rank"], i["user"]["id"]) for i in board["items"]] == \
        [(1, friend.user_id), (2, me.user_id)]
    assert board["my_rank"] == 2 and board["total"] == 2
    assert [i["user"]["id"] for i in board["around"]] == [friend.user_id, me.user_id]


@pytest.mark.gen_test(timeout=120)
async def test_scores_reach_the_boards_through_the_outbox_and_the_worker(
        api, resources, celery_worker_process, default_rules):
    me = await api.login()
    (await api.post("/v1/checkin", token=me.token)).ok()  # 10 points earned
    points_key = key(resources, "user_points")

    async def points_score() -> float | None:
        return await resources.cache.redis.zscore(points_key, str(me.user_id))

    score = await wait_until(points_score, what="the check-in on the points board")
    assert leaderboards.primary_of(score) == 10
    week = await resources.cache.redis.zscore(key(resources, "user_points", "week"),
                                              str(me.user_id))
    assert week is not None and leaderboards.primary_of(week) == 10

    # A pet's progress queued by pet_progressed in the writer's transaction.
    pet = await pet_row(resources, await make_pet(resources, me.user_id,
                                                  level=care.level_for(420), exp=420))
    async with resources.db.session() as session, session.begin():
        await leaderboards.pet_progressed(session, pet)
    pet_key = key(resources, "pet_level")

    async def pet_score() -> float | None:
        return await resources.cache.redis.zscore(pet_key, str(me.user_id))

    assert leaderboards.primary_of(await wait_until(pet_score, what="the pet board")) == 420
    # An interaction that gives experience queues it too (care wires pet_progressed).
    (await api.post(f"/v1/virtual-pets/{pet.id}/interactions", json={"type": "petting"},
                    token=me.token)).ok()

    async def petted() -> bool:
        score = await pet_score()
        return score is not None and leaderboards.primary_of(score) > 420

    await wait_until(petted, what="the interaction's experience on the pet board")
    board = (await api.get("/v1/leaderboards/user_points", token=me.token)).ok()
    assert board["me"]["score"] == 10 and board["me"]["pet"]["exp"] > 420

    # Hidden by the privacy switch: dropped from every board (through the hook and worker).
    (await api.put("/v1/users/me/settings", json={
        "privacy_prefs": {"show_on_leaderboards": False}}, token=me.token)).ok()

    async def gone() -> bool:
        return await pet_score() is None and await points_score() is None

    await wait_until(gone, what="the hidden user leaving the boards")
    for kind in ("pet_level", "user_points"):
        await leaderboards.rebuild(resources, kind)
    assert await pet_score() is None and await points_score() is None
    hidden = (await api.get("/v1/leaderboards/pet_level", token=me.token)).ok()
    assert hidden["my_rank"] is None
    (await api.put("/v1/users/me/settings", json={
        "privacy_prefs": {"show_on_leaderboards": True}}, token=me.token)).ok()
    await wait_until(pet_score, what="the user listed again")


@pytest.mark.gen_test(timeout=120)
async def test_a_banned_user_leaves_the_boards_at_once_and_returns_when_unbanned(
        api, resources, celery_worker_process):
    admin, player = await api.login(role="admin"), await api.login()
    await make_pet(resources, player.user_id, level=7, exp=HIGH // 3)
    await leaderboards.refresh_user(resources, player.user_id, ["pet_level"])
    pet_key = key(resources, "pet_level")

    async def score() -> float | None:
        return await resources.cache.redis.zscore(pet_key, str(player.user_id))

    assert await score() is not None
    (await api.post(f"/v1/admin/users/{player.user_id}/ban", json={"reason": "cheating"},
                    token=admin.token)).ok()

    async def gone() -> bool:
        return await score() is None

    await wait_until(gone, what="the banned user leaving the pet board (no rebuild)")
    (await api.post(f"/v1/admin/users/{player.user_id}/unban", token=admin.token)).ok()
    assert leaderboards.primary_of(await wait_until(score, what="the user listed again")) == \
        HIGH // 3


@pytest.mark.gen_test(timeout=120)
async def test_rebuild_after_redis_lost_the_boards_gives_the_same_ranks(api, resources):
    people = [await make_member(resources) for _ in range(5)]
    for n, person in enumerate(people):
        await make_pet(resources, person.user_id, level=5, exp=HIGH // 2 + n % 3,
                       exp_reached_at=utcnow() - dt.timedelta(minutes=n))
    for board in leaderboards.BOARDS:
        await leaderboards.rebuild(resources, board)
    keys = [key(resources, board, period) for board in leaderboards.BOARDS
            for period in ("all", "week")]

    async def snapshot() -> dict[str, list]:
        return {k: await resources.cache.redis.zrevrange(k, 0, -1, withscores=True)
                for k in keys}

    before = await snapshot()
    assert before[keys[0]]
    await resources.cache.redis.delete(*keys)
    assert not any((await snapshot()).values())
    admin = await api.login(role="admin")
    user = await api.login()
    (await api.post("/v1/admin/leaderboards/pet_level/rebuild", token=user.token)).error(403)
    (await api.post("/v1/admin/leaderboards/gold/rebuild", token=admin.token)).error(404)
    for kind in ("pet_level", "user_points"):
        done = (await api.post(f"/v1/admin/leaderboards/{kind}/rebuild",
                               token=admin.token)).ok()
        assert done["entries"]["all"] == len(before[key(resources, kind)])
    assert await snapshot() == before
    assert not await resources.cache.redis.keys(resources.cache.key("lb", "*", "staging*"))
    ttl = await resources.cache.redis.ttl(key(resources, "pet_level", "week"))
    assert ttl == -2 or 0 < ttl <= (7 + leaderboards.WEEK_KEEP_DAYS) * 86400


@pytest.mark.gen_test(timeout=120)
async def test_a_rebuild_read_a_range_of_users_at_a_time_writes_the_same_boards(resources):
    """Ten million pets do not fit one read: the rebuild reads `users_per_read` user ids at a
    time into staging keys. Cut between these users, it must write exactly the boards one
    read writes, leave no staging key behind, and keep the all-time board without expiry."""
    people = [await make_member(resources) for _ in range(5)]
    for n, person in enumerate(people):
        await make_pet(resources, person.user_id, level=6, exp=HIGH // 4 + n,
                       exp_reached_at=utcnow() - dt.timedelta(minutes=n))
        async with resources.db.session() as session, session.begin():
            session.add(PetInteraction(pet_id=0, user_id=person.user_id, type="training",
                                       changes={}, exp_gained=15 + n, level_after=6,
                                       skill_unlocked="", created_at=utcnow()))
    keys = [key(resources, board, period) for board in leaderboards.BOARDS
            for period in ("all", "week")]

    async def snapshot() -> dict[str, list]:
        return {k: await resources.cache.redis.zrevrange(k, 0, -1, withscores=True)
                for k in keys}

    whole = {board: await leaderboards.rebuild(resources, board) for board in leaderboards.BOARDS}
    once = await snapshot()
    assert {str(p.user_id).encode() for p in people} <= {m for m, _ in once[keys[0]]}
    assert {str(p.user_id).encode() for p in people} <= {m for m, _ in once[keys[1]]}
    cut = people[2].user_id  # people 0-1 in one read, 2-4 in the next
    for board in leaderboards.BOARDS:
        assert await leaderboards.rebuild(resources, board, users_per_read=cut) == whole[board]
    assert await snapshot() == once
    assert not await resources.cache.redis.keys(resources.cache.key("lb", "*", "staging*"))
    assert await resources.cache.redis.ttl(key(resources, "pet_level", "all")) == -1
