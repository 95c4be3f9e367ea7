"""The daily check-in: once per Asia/Shanghai calendar day, a streak of consecutive days,
make-ups of missed days within the last week (for points), and the daily reminder.
docs/virtual-pet.md ("Daily check-in").

- **Once a day.** A check-in is a `daily_checkins` row, UNIQUE (user, day): of two taps at
  once, one inserts and the other is refused (409). Both take the user's points-account lock
  first (the lock the award takes anyway), so a user's check-ins and make-ups run one after
  another and each sees the streaks the one before it wrote.
- **Streaks.** The streak of a day is 1 + the streak of the day before when that day is
  checked in, else 1. The points are the points rules' (pawhome/points/earning.py
  `award_checkin`): base points every day, a bonus on every n-th day of a streak.
- **Make-up.** A missed day within the last MAKEUP_WINDOW_DAYS days (not today, not the
  future) can be checked in for the rules' make-up cost. It earns that day's base points,
  never a streak bonus, and repairs the streak: the streaks of the checked-in days that now
  follow it without a gap are recomputed. Bonuses are not paid retroactively for repaired
  days; the next check-in continues the repaired streak and earns its bonus when it reaches
  one.
- **Reminder.** A user may ask to be reminded at an hour of the day; the beat job sends the
  reminder (a `system` notification, which schedules its WeChat subscribe message within the
  user's quota) to those who have not checked in by then, at most once a day.

Every function takes an optional `now` (naive UTC) so tests can live through several days.
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.checkins import CheckinReminder, DailyCheckin
from pawhome.messaging import notifications
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import AlreadyCheckedIn, MakeupNotAllowed, field_error
from pawhome.platform.resources import Resources
from pawhome.points import earning, ledger
from pawhome.points import rules as points_rules

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAKEUP_WINDOW_DAYS = 7  # a missed day can be made up within this many days before today
PREVIEW_DAYS = 7  # the rewards preview covers the next week of check-ins
REMINDER_BATCH = 200
DEFAULT_REMINDER_HOUR = 20


def local_day(now: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar day of `now` (naive UTC)."""
    return now.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).date()


def local_hour(now: dt.datetime) -> int:
    return now.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).hour


class MakeupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: dt.date = Field(description="the missed day (Asia/Shanghai), YYYY-MM-DD, within "
                                        f"the last {MAKEUP_WINDOW_DAYS} days, not today")


class ReminderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    hour: int = Field(DEFAULT_REMINDER_HOUR, ge=0, le=23,
                      description="hour of the day (Asia/Shanghai) to be reminded at")


MAKEUP_REFUSALS = {
    "date": f"within the last {MAKEUP_WINDOW_DAYS} days, not today or later (422); a day "
            "checked in already (409)",
    "points": "the balance must cover the make-up cost (422)",
}


def checkin_view(row: DailyCheckin) -> dict[str, Any]:
    return {"date": row.day.isoformat(), "streak": row.streak, "makeup": row.makeup,
            "points": row.points, "bonus": row.bonus}


async def _days(session: AsyncSession, user_id: int, since: dt.date,
                until: dt.date) -> dict[dt.date, DailyCheckin]:
    rows = (await session.execute(select(DailyCheckin).where(
        DailyCheckin.user_id == user_id, DailyCheckin.day >= since,
        DailyCheckin.day <= until))).scalars()
    return {row.day: row for row in rows}


async def _streak_before(session: AsyncSession, user_id: int, day: dt.date) -> int:
    """The streak of the day before `day` (0: not checked in)."""
    found = (await session.execute(select(DailyCheckin.streak).where(
        DailyCheckin.user_id == user_id,
        DailyCheckin.day == day - dt.timedelta(days=1)))).scalar_one_or_none()
    return int(found or 0)


async def _lock_user(session: AsyncSession, user_id: int, now: dt.datetime) -> None:
    """Serialise this user's check-ins and make-ups on the points-account lock (the award
    takes it anyway); reads after it see what the previous one committed."""
    await ledger.lock_account(session, user_id, now)


async def _insert(session: AsyncSession, user_id: int, day: dt.date, streak: int,
                  makeup: bool, now: dt.datetime) -> DailyCheckin:
    """The day's row, or AlreadyCheckedIn. The UNIQUE (user, day) key is the last word: a
    duplicate that slipped past the check fails the flush and run_transaction reruns the
    work, which then finds the row."""
    if (await session.execute(select(DailyCheckin.id).where(
            DailyCheckin.user_id == user_id, DailyCheckin.day == day))).first() is not None:
        raise AlreadyCheckedIn("Checked in today already" if not makeup
                               else "That day is checked in already",
                               errors=[field_error("date", "checked in already")])
    row = DailyCheckin(user_id=user_id, day=day, streak=streak, makeup=makeup, created_at=now)
    session.add(row)
    await session.flush()
    return row


async def check_in(resources: Resources, user_id: int,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """POST /v1/checkin: check in today; 409 when today is checked in already."""
    moment = now or utcnow()
    return await run_transaction(resources.db,
                                 lambda session: check_in_at(session, user_id, moment))


async def check_in_at(session: AsyncSession, user_id: int, now: dt.datetime) -> dict[str, Any]:
    """The check-in of the local day of `now` (AlreadyCheckedIn if it has one). Caller
    commits (check_in, and the demo data's yesterday)."""
    day = local_day(now)
    await _lock_user(session, user_id, now)
    streak = await _streak_before(session, user_id, day) + 1
    row = await _insert(session, user_id, day, streak, False, now)
    award = await earning.award_checkin(session, user_id, day, streak)
    row.points, row.bonus = award.points, award.bonus
    return {**checkin_view(row), "balance": award.balance}


async def make_up(resources: Resources, user_id: int, body: MakeupBody,
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """POST /v1/checkin/makeup: check in a missed day of the last week, for points; the
    streaks of the days after it are recomputed."""
    now = now or utcnow()
    today, day = local_day(now), body.date
    if day >= today:
        raise MakeupNotAllowed("Only a past day can be made up",
                               errors=[field_error("date", "must be before today")])
    if day < today - dt.timedelta(days=MAKEUP_WINDOW_DAYS):
        raise MakeupNotAllowed(
            f"Only the last {MAKEUP_WINDOW_DAYS} days can be made up",
            errors=[field_error("date", f"at most {MAKEUP_WINDOW_DAYS} days ago")])

    async def work(session: AsyncSession) -> dict[str, Any]:
        await _lock_user(session, user_id, now)
        streak = await _streak_before(session, user_id, day) + 1
        row = await _insert(session, user_id, day, streak, True, now)
        charged = await earning.charge_makeup_checkin(session, user_id, day)
        # streak 0: the day's base points, never a bonus for a made-up day.
        award = await earning.award_checkin(session, user_id, day, 0)
        row.points = award.points
        repaired = await _repair_after(session, user_id, day, streak, today)
        return {**checkin_view(row), "cost": -charged.delta if charged else 0,
                "balance": award.balance, "streak_now": repaired}

    return await run_transaction(resources.db, work)


async def _repair_after(session: AsyncSession, user_id: int, day: dt.date, streak: int,
                        today: dt.date) -> int:
    """Recompute the streaks of the checked-in days right after `day` (whose streak is now
    `streak`) up to the first gap; returns the current streak (today's, else yesterday's)."""
    following = await _days(session, user_id, day + dt.timedelta(days=1), today)
    current, cursor = streak, day + dt.timedelta(days=1)
    while cursor in following:
        current += 1
        if following[cursor].streak != current:
            await session.execute(update(DailyCheckin).where(
                DailyCheckin.id == following[cursor].id).values(streak=current))
        cursor += dt.timedelta(days=1)
    # The streak still running: the repaired run reaches today or yesterday.
    return current if cursor >= today else await _current_streak(session, user_id, today)


async def _current_streak(session: AsyncSession, user_id: int, today: dt.date) -> int:
    days = await _days(session, user_id, today - dt.timedelta(days=1), today)
    row = days.get(today) or days.get(today - dt.timedelta(days=1))
    return row.streak if row else 0


def _month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


async def status(resources: Resources, user_id: int,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """GET /v1/checkin/status: this month's calendar, today, the current streak, the
    rewards of the next check-ins, and the make-up offer."""
    now = now or utcnow()
    today = local_day(now)
    first, last = _month_bounds(today)
    window_start = today - dt.timedelta(days=MAKEUP_WINDOW_DAYS)
    async with resources.db.session() as session:
        days = await _days(session, user_id, min(first, window_start), last)
        rules = await points_rules.load(session)
        reminder = await session.get(CheckinReminder, user_id)
    checked_today = today in days
    yesterday = days.get(today - dt.timedelta(days=1))
    streak = days[today].streak if checked_today else (yesterday.streak if yesterday else 0)
    # The next check-ins: tomorrow on if today is done, else today on; the streak goes on.
    start = today + dt.timedelta(days=1) if checked_today else today
    preview = []
    for n in range(PREVIEW_DAYS):
        future_streak = streak + n + 1
        preview.append({"date": (start + dt.timedelta(days=n)).isoformat(),
                        "streak": future_streak, "points": rules.checkin_points,
                        "bonus": rules.streak_bonus(future_streak)})
    missed = [window_start + dt.timedelta(days=n) for n in range(MAKEUP_WINDOW_DAYS)]
    return {
        "today": today.isoformat(), "checked_in_today": checked_today, "streak": streak,
        "month": today.strftime("%Y-%m"),
        "days": [checkin_view(days[d]) for d in sorted(days) if first <= d <= last],
        "rewards_preview": preview,
        "makeup": {"cost": rules.makeup_checkin_cost, "window_days": MAKEUP_WINDOW_DAYS,
                   "available": [d.isoformat() for d in missed if d not in days]},
        "reminder": reminder_view(reminder),
    }


# -- the reminder ---------------------------------------------------------------------------------


def reminder_view(row: CheckinReminder | None) -> dict[str, Any]:
    if row is None:
        return {"enabled": False, "hour": DEFAULT_REMINDER_HOUR}
    return {"enabled": row.enabled, "hour": row.hour}


async def set_reminder(resources: Resources, user_id: int,
                       body: ReminderBody) -> dict[str, Any]:
    """PUT /v1/checkin/reminder: switch the daily reminder on or off, at an hour."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        row = await session.get(CheckinReminder, user_id, with_for_update=True)
        if row is None:
            row = CheckinReminder(user_id=user_id, enabled=body.enabled, hour=body.hour)
            session.add(row)
            await session.flush()  # a concurrent first PUT: the key decides, the rerun updates
        else:
            row.enabled, row.hour, row.updated_at = body.enabled, body.hour, utcnow()
        return reminder_view(row)

    return await run_transaction(resources.db, work)


async def _remind_one(session: AsyncSession, user_id: int, today: dt.date) -> bool:
    """Send one user's reminder of `today` unless it went out already (the conditional
    UPDATE decides between racing runs) or they checked in meanwhile."""
    taken = await session.execute(
        update(CheckinReminder).where(
            CheckinReminder.user_id == user_id, CheckinReminder.enabled.is_(True),
            or_(CheckinReminder.last_sent_on.is_(None), CheckinReminder.last_sent_on < today))
        .values(last_sent_on=today))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if (await session.execute(select(DailyCheckin.id).where(
            DailyCheckin.user_id == user_id, DailyCheckin.day == today))).first() is not None:
        return False  # checked in meanwhile: today's reminder is spent on nothing
    streak = await _streak_before(session, user_id, today)
    text = f"已连续签到 {streak} 天，今天签到继续保持" if streak \
        else "今天还没有签到，来看看你的萌宠吧"
    await notifications.notify(session, user_id, "system", "checkin_reminder",
                               target_type="checkin", payload={
                                   "title": "签到提醒", "text": text,
                                   "date": today.isoformat(), "streak": streak})
    return True


async def send_reminders(resources: Resources, now: dt.datetime | None = None) -> int:
    """Beat: remind every opted-in user whose hour has come today and who has not checked
    in, once a day. Hours that passed while the workers were down are caught up the same
    day. Returns how many reminders went out."""
    now = now or utcnow()
    today, hour = local_day(now), local_hour(now)
    sent, after = 0, 0
    while True:
        async with resources.db.session() as session:
            due = list((await session.execute(
                select(CheckinReminder.user_id).where(
                    CheckinReminder.user_id > after, CheckinReminder.enabled.is_(True),
                    CheckinReminder.hour <= hour,
                    or_(CheckinReminder.last_sent_on.is_(None),
                        CheckinReminder.last_sent_on < today),
                    ~exists().where(and_(DailyCheckin.user_id == CheckinReminder.user_id,
                                         DailyCheckin.day == today)))
                .order_by(CheckinReminder.user_id).limit(REMINDER_BATCH))).scalars())
        if not due:
            return sent
        for user_id in due:
            async with resources.db.session() as session, session.begin():
                sent += await _remind_one(session, user_id, today)
        after = due[-1]
