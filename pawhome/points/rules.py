"""The points rules: data an admin edits (PUT /v1/admin/points/rules), not code. What a
check-in earns and its streak bonuses, what an order earns per yuan and the daily cap on it,
the points payment rule (N points = 1 yuan, at most X % of what is left to pay), the cost of
a make-up check-in, and whether points expire. One row; a missing row or field means the
default below. docs/points.md ("Rules").
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.points import PointsRules
from pawhome.platform import audit, cache, codec
from pawhome.platform.resources import Resources

RULES_ROW = 1
CACHE_KEY = ("points", "rules")


class StreakBonus(BaseModel):
    """Extra points on every `days`-th day of an unbroken check-in streak."""
    model_config = ConfigDict(extra="forbid")
    days: int = Field(ge=2, le=366)
    points: int = Field(ge=1, le=100_000)


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    checkin_points: int = Field(10, ge=0, le=100_000, description="points per daily check-in")
    streak_bonuses: list[StreakBonus] = Field(
        default_factory=lambda: [StreakBonus(days=7, points=30), StreakBonus(days=30, points=100)],
        max_length=10, description="bonuses on every n-th day of a streak (distinct days)")
    makeup_checkin_cost: int = Field(20, ge=0, le=100_000,
                                     description="points a make-up check-in costs")
    order_points_per_yuan: int = Field(1, ge=0, le=1000,
                                       description="points per yuan paid, when an order completes")
    order_points_daily_cap: int = Field(2000, ge=0, le=10_000_000,
                                        description="most order points one user earns a day "
                                                    "(Beijing day); 0: no cap")
    payment_points_per_yuan: int = Field(100, ge=1, le=100_000,
                                         description="points that pay 1 yuan at checkout")
    payment_max_percent: int = Field(50, ge=0, le=100,
                                     description="most of an order's payable paid with points")
    expiry_days: int = Field(0, ge=0, le=3650,
                             description="earned points lapse after this many days; 0: never")

    @field_validator("streak_bonuses")
    @classmethod
    def _distinct_days(cls, value: list[StreakBonus]) -> list[StreakBonus]:
        if len({bonus.days for bonus in value}) != len(value):
            raise ValueError("each streak length at most once")
        return sorted(value, key=lambda bonus: bonus.days)

    def streak_bonus(self, streak: int) -> int:
        """The bonus for the `streak`-th day in a row (0 when none applies)."""
        return sum(b.points for b in self.streak_bonuses if streak > 0 and streak % b.days == 0)

    def expires_at(self, now: dt.datetime) -> dt.datetime | None:
        return now + dt.timedelta(days=self.expiry_days) if self.expiry_days else None

    def points_value_fen(self, points: int) -> int:
        """What `points` pay, in fen (whole fen, rounded down)."""
        return points * 100 // self.payment_points_per_yuan

    def points_within_fen(self, fen: int) -> int:
        """The most points whose value is at most `fen`."""
        if fen <= 0:
            return 0
        return max(0, ((fen + 1) * self.payment_points_per_yuan - 1) // 100)


async def load(session: AsyncSession) -> Rules:
    """The rules in force (defaults for anything never set). Caller commits."""
    stored = (await session.execute(select(PointsRules.rules).where(
        PointsRules.id == RULES_ROW))).scalar_one_or_none()
    return Rules.model_validate(stored or {})


async def cached(resources: Resources, raw: bytes | str | None = None) -> Rules:
    """The rules through Redis (`raw`: the cached value when the caller read it already),
    dropped after every change of them."""
    if raw is not None:
        return Rules.model_validate(codec.loads(raw))
    async with resources.db.session() as session:
        rules = await load(session)
    await resources.cache.redis.set(resources.cache.key(*CACHE_KEY),
                                    codec.dumps(rules.model_dump()),
                                    ex=resources.settings.points_balance_cache_seconds)
    return rules


async def get_rules(resources: Resources) -> dict[str, Any]:
    async with resources.db.session() as session:
        return (await load(session)).model_dump()


async def put_rules(resources: Resources, rules: Rules, *, admin_id: int) -> dict[str, Any]:
    """Replace the rules (audited with the before and after)."""
    async with resources.db.session() as session, session.begin():
        row = (await session.execute(select(PointsRules).where(PointsRules.id == RULES_ROW)
                                     .with_for_update())).scalar_one_or_none()
        before = Rules.model_validate(row.rules if row else {}).model_dump()
        after = rules.model_dump()
        if row is None:
            session.add(PointsRules(id=RULES_ROW, rules=after, updated_by=admin_id))
        else:
            row.rules, row.updated_by, row.updated_at = after, admin_id, utcnow()
        cache.forget_after_commit(session, *CACHE_KEY)
        audit.record(session, actor_id=admin_id, actor_role="admin", action="points.rules",
                     target_type="points_rules", target_id=RULES_ROW, before=before,
                     after=after)
    return after
