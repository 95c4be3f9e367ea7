"""The daily check-in: once per Asia/Shanghai day (the UNIQUE key decides double taps),
streaks over consecutive days and their bonuses, make-ups within the last week that repair the
streak for points, the status calendar, and the daily reminder sent once. Days are lived
through by passing `now` to the domain functions. Real MariaDB and Redis; nothing of ours
mocked."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from models.checkins import DailyCheckin
from models.points import PointsEntry
from models.realtime import Notification
from pawhome.platform.errors import AlreadyCheckedIn, InsufficientPoints, MakeupNotAllowed
from pawhome.virtualpet import checkin
from tests.mall_support import make_member
from tests.points_support import (
    assert_balance_matches_ledger,
    default_rules,  # noqa: F401  (fixture)
    give_points,
)

# Noon in Shanghai (04:00 UTC) of a day far from the real clock, one test's own.
_days_taken = iter(range(0, 100_000, 40))


def a_day() -> dt.datetime:
    """The first of a run of days no other test of this module uses (noon, Asia/Shanghai)."""
    return dt.datetime(2031, 1, 1, 4, 0) + dt.timedelta(days=next(_days_taken))


def day(base: dt.datetime, n: int) -> dt.datetime:
    return base + dt.timedelta(days=n)


async def rows_of(resources, user_id: int) -> dict[str, tuple[int, bool, int, int]]:
    async with resources.db.session() as session:
        rows = (await session.execute(select(DailyCheckin).where(
            DailyCheckin.user_id == user_id).order_by(DailyCheckin.day))).scalars()
        return {r.day.isoformat(): (r.streak, r.makeup, r.points, r.bonus) for r in rows}


async def checkin_ledger_rows(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count()).where(
            PointsEntry.user_id == user_id,
            PointsEntry.reason.in_(("checkin", "checkin_bonus"))))).scalar_one())


@pytest.mark.gen_test(timeout=60)
async def test_a_second_checkin_the_same_day_is_409_and_earns_nothing(api, resources,
                                                                       default_rules):
    me = await api.login()
    first = (await api.post("/v1/checkin", token=me.token)).ok()
    assert (first["streak"], first["points"], first["bonus"], first["makeup"]) == (1, 10, 0,
                                                                                  False)
    assert first["balance"] == 10
    (await api.post("/v1/checkin", token=me.token)).error(409, code=40976)
    status = (await api.get("/v1/checkin/status", token=me.token)).ok()
    assert status["checked_in_today"] and status["streak"] == 1
    assert [d["date"] for d in status["days"]] == [status["today"]]
    assert await assert_balance_matches_ledger(resources, me.user_id) == 10


@pytest.mark.gen_test(timeout=60)
async def test_an_idempotency_key_replays_the_checkin_instead_of_409(api, resources,
                                                                     default_rules):
    me = await api.login()
    key = {"Idempotency-Key": "checkin-" + uuid.uuid4().hex}
    first = await api.post("/v1/checkin", token=me.token, headers=key)
    again = await api.post("/v1/checkin", token=me.token, headers=key)
    assert first.ok() == again.ok()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await checkin_ledger_rows(resources, me.user_id) == 1


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_double_taps_give_one_checkin_and_one_award(api, resources,
                                                                     default_rules):
    me = await api.login()
    replies = await asyncio.gather(*[api.post("/v1/checkin", token=me.token)
                                     for _ in range(8)])
    assert sorted(r.status for r in replies) == [200] + [409] * 7
    # And in the domain, on another day, twenty at once.
    now = a_day()

    async def tap() -> bool:
        try:
            await checkin.check_in(resources, me.user_id, now=now)
            return True
        except AlreadyCheckedIn:
            return False

    results = await asyncio.gather(*[tap() for _ in range(20)])
    assert results.count(True) == 1
    assert len(await rows_of(resources, me.user_id)) == 2
    assert await checkin_ledger_rows(resources, me.user_id) == 2
    assert await assert_balance_matches_ledger(resources, me.user_id) == 20


@pytest.mark.gen_test(timeout=60)
async def test_a_streak_grows_on_consecutive_days_with_its_bonus_on_day_seven(resources,
                                                                              default_rules):
    me = await make_member(resources)
    base = a_day()
    replies = [await checkin.check_in(resources, me.user_id, now=day(base, n))
               for n in range(8)]
    assert [r["streak"] for r in replies] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["bonus"] for r in replies] == [0, 0, 0, 0, 0, 0, 30, 0]
    assert replies[-1]["balance"] == 8 * 10 + 30
    status = await checkin.status(resources, me.user_id, now=day(base, 8))
    assert (status["checked_in_today"], status["streak"]) == (False, 8)
    assert status["rewards_preview"][0] == {"date": day(base, 8).date().isoformat(),
                                            "streak": 9, "points": 10, "bonus": 0}


@pytest.mark.gen_test(timeout=60)
async def test_a_missed_day_breaks_the_streak(resources, default_rules):
    me = await make_member(resources)
    base = a_day()
    for n in (0, 1):
        await checkin.check_in(resources, me.user_id, now=day(base, n))
    after_gap = await checkin.check_in(resources, me.user_id, now=day(base, 3))
    assert after_gap["streak"] == 1
    status = await checkin.status(resources, me.user_id, now=day(base, 5))
    assert status["streak"] == 0  # neither today nor yesterday: no streak running
    assert day(base, 2).date().isoformat() in status["makeup"]["available"]


@pytest.mark.gen_test(timeout=60)
async def test_a_makeup_repairs_the_streak_and_costs_points_without_bonuses(resources,
                                                                            default_rules):
    me = await make_member(resources)
    base = a_day()
    for n in (0, 1, 3, 4, 5):
        await checkin.check_in(resources, me.user_id, now=day(base, n))
    missed = day(base, 2).date()
    made = await checkin.make_up(resources, me.user_id, checkin.MakeupBody(date=missed),
                                 now=day(base, 6))
    assert (made["streak"], made["makeup"], made["points"], made["bonus"], made["cost"]) == \
        (3, True, 10, 0, 20)
    assert made["streak_now"] == 6  # days 0..5 in a row now; today (day 6) not yet
    rows = await rows_of(resources, me.user_id)
    assert [rows[day(base, n).date().isoformat()][0] for n in range(6)] == [1, 2, 3, 4, 5, 6]
    assert rows[missed.isoformat()][1] is True
    # No bonus paid retroactively for the repaired days; the next check-in reaches 7 and
    # earns the day-7 bonus.
    assert sum(r[3] for r in rows.values()) == 0
    seventh = await checkin.check_in(resources, me.user_id, now=day(base, 6))
    assert (seventh["streak"], seventh["bonus"]) == (7, 30)
    assert seventh["balance"] == 5 * 10 - 20 + 10 + 10 + 30
    await assert_balance_matches_ledger(resources, me.user_id)


@pytest.mark.gen_test(timeout=60)
async def test_makeup_refusals_change_nothing(api, resources, default_rules):
    me = await make_member(resources)
    base = a_day()
    await checkin.check_in(resources, me.user_id, now=day(base, 0))  # 10 points
    now = day(base, 9)

    async def refused(date: dt.date, error: type[Exception]) -> None:
        with pytest.raises(error):
            await checkin.make_up(resources, me.user_id, checkin.MakeupBody(date=date), now=now)

    await refused(now.date(), MakeupNotAllowed)  # today
    await refused(day(base, 11).date(), MakeupNotAllowed)  # the future
    await refused(day(base, 1).date(), MakeupNotAllowed)  # 8 days ago: beyond the week
    await refused(day(base, 5).date(), InsufficientPoints)  # 10 points, the cost is 20
    assert list(await rows_of(resources, me.user_id)) == [day(base, 0).date().isoformat()]
    assert await assert_balance_matches_ledger(resources, me.user_id) == 10
    await give_points(resources, me.user_id, 100)
    made = await checkin.make_up(resources, me.user_id,
                                 checkin.MakeupBody(date=day(base, 2).date()), now=now)
    assert made["streak"] == 1  # day 1 was missed too
    await refused(day(base, 2).date(), AlreadyCheckedIn)
    assert await assert_balance_matches_ledger(resources, me.user_id) == 10 + 100 - 20 + 10


@pytest.mark.gen_test(timeout=60)
async def test_makeup_endpoint_refusals(api, resources, default_rules):
    me = await api.login()
    status = (await api.get("/v1/checkin/status", token=me.token)).ok()
    today = dt.date.fromisoformat(status["today"])
    for date, code in ((today, 42267), (today + dt.timedelta(days=1), 42267),
                       (today - dt.timedelta(days=8), 42267)):
        (await api.post("/v1/checkin/makeup", json={"date": date.isoformat()},
                        token=me.token)).error(422, code=code, field="date")
    for body in ({}, {"date": "yesterday"}, {"date": "2026-13-01"},
                 {"date": today.isoformat(), "extra": 1}):
        (await api.post("/v1/checkin/makeup", json=body, token=me.token)).error(422)
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    # No points yet: the cost cannot be paid, nothing is written.
    (await api.post("/v1/checkin/makeup", json={"date": yesterday},
                    token=me.token)).error(422, field="points")
    assert await rows_of(resources, me.user_id) == {}
    (await api.post("/v1/checkin", token=me.token)).ok()
    (await api.post("/v1/checkin", token=me.token)).error(409)
    await give_points(resources, me.user_id, 100)
    made = (await api.post("/v1/checkin/makeup", json={"date": yesterday},
                           token=me.token)).ok()
    assert made["makeup"] and made["streak"] == 1 and made["streak_now"] == 2
    (await api.post("/v1/checkin/makeup", json={"date": yesterday},
                    token=me.token)).error(409, code=40976)
    status = (await api.get("/v1/checkin/status", token=me.token)).ok()
    assert status["streak"] == 2
    assert yesterday not in status["makeup"]["available"]
    assert await assert_balance_matches_ledger(resources, me.user_id) == 10 + 100 - 20 + 10


@pytest.mark.gen_test(timeout=60)
async def test_reminder_goes_once_a_day_to_those_not_checked_in_by_their_hour(api, resources,
                                                                              default_rules):
    me, done = await api.login(), await api.login()
    for person in (me, done):
        reply = (await api.put("/v1/checkin/reminder", json={"enabled": True, "hour": 9},
                               token=person.token)).ok()
        assert reply == {"enabled": True, "hour": 9}
    (await api.put("/v1/checkin/reminder", json={"enabled": True, "hour": 24},
                   token=me.token)).error(422, field="hour")
    base = a_day()  # 12:00 Shanghai
    await checkin.check_in(resources, done.user_id, now=base)
    early = base - dt.timedelta(hours=4)  # 08:00: before the hour
    await checkin.send_reminders(resources, now=early)
    assert await reminders_of(resources, me.user_id) == 0
    # Racing runs after the hour (and catching up the hour they missed): one reminder.
    await asyncio.gather(*[checkin.send_reminders(resources, now=base) for _ in range(4)])
    await checkin.send_reminders(resources, now=base + dt.timedelta(hours=3))
    assert await reminders_of(resources, me.user_id) == 1
    assert await reminders_of(resources, done.user_id) == 0
    # The next day, again once; switched off, never.
    await checkin.send_reminders(resources, now=day(base, 1))
    assert await reminders_of(resources, me.user_id) == 2
    (await api.put("/v1/checkin/reminder", json={"enabled": False, "hour": 9},
                   token=me.token)).ok()
    await checkin.send_reminders(resources, now=day(base, 2))
    assert await reminders_of(resources, me.user_id) == 2
    status = (await api.get("/v1/checkin/status", token=me.token)).ok()
    assert status["reminder"] == {"enabled": False, "hour": 9}


async def reminders_of(resources, user_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(func.count()).where(
            Notification.user_id == user_id,
            Notification.kind == "checkin_reminder"))).scalar_one())
