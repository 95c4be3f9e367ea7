"""The registry of daily metrics, and the built-in ones.

A metric is a name and an async function of one Asia/Shanghai day (`DayContext`: the day,
its half-open naive-UTC range, a session, the cache) returning the day's figure, or None when
it cannot be known now (then a stored figure stays). Every function reads one day's range
of one index (a `created_at`, `paid_at` or `succeeded_at` index, created by migration 0026
where missing), never the whole table. A domain adds its own with
`register_metric(name, fn, label=..., unit=...)` at import (pawhome/domains.py imports it).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.booking import Appointment
from models.community import Comment, Like, Post
from models.mall import Order
from models.payments import PaymentRefund
from models.points import PointsEntry
from models.users import User
from models.virtual_pets import PetGeneration, PetInteraction
from pawhome.platform import activity
from pawhome.platform.cache import Cache

Unit = Literal["count", "users", "fen", "points"]
MONTH_DAYS = 30  # a monthly figure is the distinct users of this many days up to the day


@dataclass(frozen=True)
class DayContext:
    day: dt.date
    start: dt.datetime  # naive UTC, inclusive
    end: dt.datetime  # naive UTC, exclusive
    session: AsyncSession
    cache: Cache


MetricFn = Callable[[DayContext], Awaitable[int | None]]


@dataclass(frozen=True)
class Metric:
    name: str
    compute: MetricFn
    label: str
    unit: Unit


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, fn: MetricFn, *, label: str = "",
                    unit: Unit = "count") -> None:
    """Add a daily metric (a name of lowercase letters, digits and _, at most 48). The same
    name registered twice with another function is a mistake and raises."""
    if not name or len(name) > 48 or not all(c.islower() or c.isdigit() or c == "_"
                                             for c in name):
        raise ValueError(f"bad metric name {name!r}")
    known = _METRICS.get(name)
    if known is not None and known.compute is not fn:
        raise ValueError(f"metric {name!r} is registered already")
    _METRICS[name] = Metric(name, fn, label or name, unit)


def registered() -> list[Metric]:
    """Every metric, in the order registered."""
    return list(_METRICS.values())


def names() -> list[str]:
    return list(_METRICS)


# -- the building blocks -----------------------------------------------------------------------


def count_in_day(column: Any, *conditions: Any) -> MetricFn:
    """Rows whose `column` falls on the day (an index on `column` serves it)."""
    async def compute(ctx: DayContext) -> int:
        statement = select(func.count()).select_from(column.table).where(
            column >= ctx.start, column < ctx.end, *conditions)
        return int((await ctx.session.execute(statement)).scalar_one())
    return compute


def sum_in_day(column: Any, amount: Any, *conditions: Any, sign: int = 1) -> MetricFn:
    """The sum of `amount` over the rows whose `column` falls on the day."""
    async def compute(ctx: DayContext) -> int:
        statement = select(func.coalesce(func.sum(amount), 0)).where(
            column >= ctx.start, column < ctx.end, *conditions)
        return sign * int((await ctx.session.execute(statement)).scalar_one())
    return compute


async def daily_active(ctx: DayContext) -> int | None:
    """Distinct users seen on the day (the gateways' sketch, pawhome/platform/activity.py)."""
    return await activity.count_active(ctx.cache, [ctx.day])


async def monthly_active(ctx: DayContext) -> int | None:
    """Distinct users seen in the MONTH_DAYS days up to and including the day."""
    if await activity.count_active(ctx.cache, [ctx.day]) is None:
        return None  # the day itself is unknown (lost, or nobody came): keep what is kept
    return await activity.count_active(ctx.cache, month_of(ctx.day))


def month_of(day: dt.date) -> list[dt.date]:
    """The MONTH_DAYS days a monthly figure covers, the day last."""
    return [day - dt.timedelta(days=n) for n in range(MONTH_DAYS - 1, -1, -1)]


# Activity registrations are registered by the activities domain itself.
register_metric("dau", daily_active, label="日活跃用户", unit="users")
register_metric("mau", monthly_active, label="月活跃用户（30 天）", unit="users")
register_metric("new_users", count_in_day(User.created_at), label="新增用户")
register_metric("posts", count_in_day(Post.created_at), label="发帖")
register_metric("comments", count_in_day(Comment.created_at), label="评论")
register_metric("likes", count_in_day(Like.created_at), label="点赞")
register_metric("orders", count_in_day(Order.created_at), label="下单")
register_metric("paid_orders", count_in_day(Order.paid_at), label="支付订单")
register_metric("gmv_fen", sum_in_day(Order.paid_at, Order.payable_amount),
                label="GMV（分）", unit="fen")
register_metric("refunds", count_in_day(PaymentRefund.succeeded_at), label="退款笔数")
register_metric("refund_fen", sum_in_day(PaymentRefund.succeeded_at, PaymentRefund.amount),
                label="退款金额（分）", unit="fen")
register_metric("appointments", count_in_day(Appointment.created_at), label="服务预约")
register_metric("generations", count_in_day(PetGeneration.created_at), label="虚拟宠物生成")
register_metric("interactions", count_in_day(PetInteraction.created_at), label="宠物互动")
register_metric("points_earned", sum_in_day(PointsEntry.created_at, PointsEntry.delta,
                                            PointsEntry.delta > 0),
                label="积分发放", unit="points")
register_metric("points_spent", sum_in_day(PointsEntry.created_at, PointsEntry.delta,
                                           PointsEntry.delta < 0,
                                           PointsEntry.reason != "expired", sign=-1),
                label="积分消耗", unit="points")
