"""Points that lapse: when the rules make earnings expire (`expiry_days`), a nightly job
takes what has lapsed out of each balance as an `expired` ledger row.

What has lapsed is computed from the ledger under the balance row's lock, the same way
"expiring soon" is shown (`ledger.lapsing_by`: every deduction, earlier expiries included,
took from the earliest-expiring lots first), so a second run the same night finds nothing
more, and a lot partly spent loses only what is left of it. docs/points.md ("Expiry").
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.points import PointsEntry
from pawhome.platform.resources import Resources
from pawhome.points import ledger

log = logging.getLogger("pawhome.points")

BATCH = 500  # users expired per query of the job


async def expire_lapsed(session: AsyncSession, user_id: int,
                        now: dt.datetime) -> ledger.Movement | None:
    """Take the user's points that lapsed by `now` (None when nothing did). Caller commits."""
    await ledger.lock_account(session, user_id, now)
    rows = (await session.execute(select(PointsEntry.delta, PointsEntry.expires_at)
                                  .where(PointsEntry.user_id == user_id)
                                  .order_by(PointsEntry.id).with_for_update())).all()
    lapsed = ledger.lapsing_by([(int(delta), expires_at) for delta, expires_at in rows], now)
    if lapsed <= 0:
        return None
    return await ledger.change(session, user_id, -lapsed, reason="expired",
                               key=f"expired:{now:%Y%m%dT%H%M%S%f}", ref_type="expiry",
                               ref_id=now.date().isoformat(), note=f"lapsed by {now:%Y-%m-%d}")


async def expire_due(resources: Resources, now: dt.datetime | None = None) -> dict[str, int]:
    """The nightly job: every user with earnings that lapsed in the last
    POINTS_EXPIRE_LOOKBACK_DAYS, each in a transaction of its own."""
    now = now or utcnow()
    since = now - dt.timedelta(days=resources.settings.points_expire_lookback_days)
    users, points, after = 0, 0, 0
    while True:
        async with resources.db.session() as session:
            batch = list((await session.execute(
                select(PointsEntry.user_id).where(
                    PointsEntry.expires_at > since, PointsEntry.expires_at <= now,
                    PointsEntry.delta > 0, PointsEntry.user_id > after)
                .group_by(PointsEntry.user_id).order_by(PointsEntry.user_id)
                .limit(BATCH))).scalars())
        for user_id in batch:
            async with resources.db.session() as session, session.begin():
                moved = await expire_lapsed(session, user_id, now)
            if moved is not None:
                users, points = users + 1, points - moved.delta
        if len(batch) < BATCH:
            break
        after = batch[-1]
    if users:
        log.info("points expiry: %s points of %s users lapsed", points, users)
    return {"users": users, "points": points}
