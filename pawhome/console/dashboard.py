"""The console's dashboard: figures by day from the existing tables (new users, posts,
paid orders and GMV, appointments, pet generations), the moderation backlog, and the live
state of the fleet (sockets per gateway, messages waiting per queue, open dead letters).

Days are Asia/Shanghai calendar days (the statistics' days, what staff in China call a
day): a row counts on the Shanghai date of its timestamp. The counts read indexed time
ranges of the last few days only; the daily aggregates of the statistics work
(GET /v1/admin/stats/daily) replace them for long ranges.
A merchant sees only their own shop's orders and appointments.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from models.base import utcnow
from models.booking import Appointment
from models.community import Post
from models.mall import Order
from models.platform import DeadLetter
from models.users import User
from models.virtual_pets import PetGeneration
from pawhome.platform import activity
from pawhome.platform.resources import Resources
from pawhome.stats import overview

MAX_DAYS = 92
# Asia/Shanghai has kept UTC+8 all year since 1991: a fixed shift turns the naive-UTC
# timestamps the tables hold into Shanghai wall time in SQL (an indexed range, then GROUP BY).
_SHANGHAI_OFFSET_SECONDS = 8 * 3600
assert dt.datetime(2026, 1, 1, tzinfo=activity.SHANGHAI).utcoffset() == dt.timedelta(
    seconds=_SHANGHAI_OFFSET_SECONDS)
assert dt.datetime(2026, 7, 1, tzinfo=activity.SHANGHAI).utcoffset() == dt.timedelta(
    seconds=_SHANGHAI_OFFSET_SECONDS)


def _day_list(days: int, today: dt.date) -> list[str]:
    return [(today - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


async def _by_day(session: AsyncSession, column: InstrumentedAttribute[Any], since: dt.datetime,
                  *conditions: Any, total: Any = None) -> dict[str, tuple[int, int]]:
    """{date: (count, sum of `total`)} of the rows whose `column` is at or after `since`."""
    if session.get_bind().dialect.name == "sqlite":  # embedded mode
        day = func.date(column, f"+{_SHANGHAI_OFFSET_SECONDS} seconds")
    else:
        day = func.date(func.date_add(column,
                                      text(f"INTERVAL {_SHANGHAI_OFFSET_SECONDS} SECOND")))
    summed = func.coalesce(func.sum(total), 0) if total is not None else func.count()
    rows = await session.execute(select(day, func.count(), summed)
                                 .where(column >= since, *conditions).group_by(day))
    return {str(d): (int(n), int(s)) for d, n, s in rows}


async def figures_by_day(resources: Resources, days: int,
                         merchant_id: int | None = None) -> dict[str, Any]:
    """One row per Asia/Shanghai day (oldest first) of the last `days` days, today
    included."""
    days = max(1, min(days, MAX_DAYS))
    today = activity.shanghai_day()
    since, _ = activity.day_bounds(today - dt.timedelta(days=days - 1))
    async with resources.db.session() as session:
        if merchant_id is None:
            users = await _by_day(session, User.created_at, since)
            posts = await _by_day(session, Post.created_at, since, Post.deleted_at.is_(None))
            generations = await _by_day(session, PetGeneration.created_at, since)
            orders = await _by_day(session, Order.paid_at, since, Order.paid_at.is_not(None),
                                   total=Order.paid_amount)
            appointments = await _by_day(session, Appointment.created_at, since)
        else:
            users = posts = generations = {}
            orders = await _by_day(session, Order.paid_at, since, Order.paid_at.is_not(None),
                                   Order.merchant_id == merchant_id, total=Order.paid_amount)
            appointments = await _by_day(session, Appointment.created_at, since,
                                         Appointment.owner_id == merchant_id)
    rows = []
    for day in _day_list(days, today):
        row: dict[str, Any] = {"date": day, "orders": orders.get(day, (0, 0))[0],
                               "gmv": orders.get(day, (0, 0))[1],
                               "appointments": appointments.get(day, (0, 0))[0]}
        if merchant_id is None:
            row.update(new_users=users.get(day, (0, 0))[0], posts=posts.get(day, (0, 0))[0],
                       generations=generations.get(day, (0, 0))[0])
        rows.append(row)
    return {"days": rows, "timezone": "Asia/Shanghai"}


async def fleet(resources: Resources) -> dict[str, Any]:
    """The live state: sockets per gateway, queue lengths, open dead letters and the
    moderation backlog (admins)."""
    gateways = await activity.gateway_sockets(resources.cache)
    queues = await overview.task_queues(resources)
    lengths = None if queues["broker"] == "unreachable" else queues["lengths"]
    async with resources.db.session() as session:
        dead = int((await session.execute(select(func.count()).select_from(DeadLetter)
                                          .where(DeadLetter.resolved_at.is_(None))))
                   .scalar_one())
        held = int((await session.execute(select(func.count()).select_from(Post).where(
            Post.status.in_(("hidden", "pending")), Post.deleted_at.is_(None)))).scalar_one())
    return {"gateways": [{"id": g["gateway"], "sockets": g["connections"], "users": g["users"]}
                         for g in gateways],
            "sockets": sum(g["connections"] for g in gateways),
            "queues": None if lengths is None else
            [{"name": name, "waiting": n} for name, n in lengths.items()],
            "dead_letters_open": dead, "posts_awaiting_review": held}


async def dashboard(resources: Resources, days: int,
                    merchant_id: int | None = None) -> dict[str, Any]:
    """What the dashboard page shows; a merchant's holds only their shop's figures."""
    out = await figures_by_day(resources, days, merchant_id)
    out["fleet"] = await fleet(resources) if merchant_id is None else None
    out["generated_at"] = utcnow()
    return out
