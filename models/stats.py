"""Business statistics: one row per Asia/Shanghai day and metric, written by the beat job
(pawhome/stats/, docs/statistics.md), and each day's sketch of its active users.

Long format (day, metric, value): a metric a domain registers later needs no migration.
The indexes at the bottom belong to other domains' tables but exist for the daily counts
alone (each metric reads one day's range of one index, never the whole table); they are
declared here, next to their only reader, and created by this domain's migration.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, UTCDateTime, utcnow
from models.booking import Appointment
from models.community import Comment, Like, Post
from models.mall import Order
from models.payments import PaymentRefund
from models.users import User
from models.virtual_pets import PetGeneration


class DailyStat(Base):
    """One metric's figure for one day (a day still under way: its figure so far)."""
    __tablename__ = "daily_stats"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(48), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                     onupdate=utcnow)


class ActiveUserSketch(Base):
    """A day's HyperLogLog of active users as Redis holds it (the raw string of the key), so
    that the 30 days behind a monthly figure survive a Redis that lost them."""
    __tablename__ = "active_user_sketches"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)


# The daily counts' indexes on other domains' tables (see the module docstring).
Index("ix_users_created_at", User.created_at)
Index("ix_posts_created_at", Post.created_at)
Index("ix_comments_created_at", Comment.created_at)
Index("ix_likes_created_at", Like.created_at)
Index("ix_orders_created_at", Order.created_at)
Index("ix_orders_paid_at", Order.paid_at, Order.payable_amount)  # covers the GMV sum
Index("ix_payment_refunds_succeeded_at", PaymentRefund.succeeded_at, PaymentRefund.amount)
Index("ix_appointments_created_at", Appointment.created_at)
Index("ix_pet_generations_created_at", PetGeneration.created_at)
