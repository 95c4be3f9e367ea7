"""The virtual pet's daily check-in: one row per user and Asia/Shanghai calendar day (the
UNIQUE key decides concurrent double taps), with the streak it made, whether it was a make-up,
and the points it earned; and each user's check-in reminder preference. docs/virtual-pet.md
("Daily check-in").
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow


class DailyCheckin(Base):
    """A user's check-in of one local day. `streak`: the days in a row ending with this one
    (recomputed for the days after a make-up fills a gap); `points` and `bonus`: what this
    day earned when it was checked in (never changed afterwards)."""
    __tablename__ = "daily_checkins"
    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_daily_checkins_user_day"),
                      CheckConstraint("streak >= 1", name="streak_positive"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)  # Asia/Shanghai calendar day
    streak: Mapped[int] = mapped_column(Integer, default=1)
    makeup: Mapped[bool] = mapped_column(Boolean, default=False)
    points: Mapped[int] = mapped_column(Integer, default=0)
    bonus: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckinReminder(Base):
    """A user's check-in reminder: sent at `hour` (Asia/Shanghai) on a day they have not
    checked in by then, at most once a day (`last_sent_on`, moved by a conditional UPDATE)."""
    __tablename__ = "checkin_reminders"
    __table_args__ = (CheckConstraint("hour BETWEEN 0 AND 23", name="hour_of_day"),
                      Index("ix_checkin_reminders_due", "enabled", "hour", "last_sent_on"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hour: Mapped[int] = mapped_column(SmallInteger, default=20)
    last_sent_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
