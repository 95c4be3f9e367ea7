"""Activities with registration: pet meetups, adoption days, vaccination days. pawhome/activities/,
docs/activities.md.

An activity moves draft → published → cancelled | finished; a registration holds a seat
(confirmed, or pending_payment until its payment deadline) or a place on the waitlist.
`activity_events` records every transition of both, with who made it.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_status_start", "status", "start_at"),  # the public list
        Index("ix_activities_merchant", "merchant_id", "id"),  # a merchant's own
        Index("ix_activities_status_end", "status", "end_at"),  # finishing the past ones
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    organiser_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))  # who created it
    # The merchant (user id) who runs it; NULL: the platform's own, run by admins.
    merchant_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))  # meetup|adoption_day|vaccination_day|other
    title: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    cover_media_id: Mapped[int | None] = mapped_column(BigInteger)
    cover_url: Mapped[str] = mapped_column(String(512), default="")
    place_name: Mapped[str] = mapped_column(String(64))
    place_address: Mapped[str] = mapped_column(String(255), default="")
    lat: Mapped[float] = mapped_column(Numeric(9, 6))
    lng: Mapped[float] = mapped_column(Numeric(9, 6))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    registration_opens_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    registration_closes_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cancel_deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # users cancel until
    capacity: Mapped[int] = mapped_column(Integer)
    waitlist_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    price_type: Mapped[str] = mapped_column(String(8), default="free")  # free|cash|points
    price: Mapped[int] = mapped_column(Integer, default=0)  # fen (cash) or points
    form_fields: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Seats held (confirmed, checked in, pending payment): changed only under the row's lock.
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    waitlisted: Mapped[int] = mapped_column(Integer, default=0)
    checked_in: Mapped[int] = mapped_column(Integer, default=0)
    cancel_reason: Mapped[str] = mapped_column(String(255), default="")
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)


class ActivityRegistration(Base):
    """One user's registration. `live_user_id` is the user's id while the registration is
    live (waitlisted, pending payment, confirmed, checked in) and NULL after, so the unique
    index allows one live registration per user and activity, and any number of ended ones."""
    __tablename__ = "activity_registrations"
    __table_args__ = (
        UniqueConstraint("activity_id", "live_user_id", name="uq_activity_registrations_live"),
        UniqueConstraint("check_in_code", name="uq_activity_registrations_code"),
        Index("ix_activity_registrations_activity", "activity_id", "status", "id"),
        Index("ix_activity_registrations_user", "user_id", "id"),
        Index("ix_activity_registrations_deadline", "status", "pay_deadline"),
        Index("ix_activity_registrations_created", "created_at"),  # daily statistics
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("activities.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    live_user_id: Mapped[int | None] = mapped_column(BigInteger)
    # waitlisted|pending_payment|confirmed|checked_in|cancelled|expired
    status: Mapped[str] = mapped_column(String(16))
    price_type: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(Integer, default=0)  # fen or points, as when made
    # none (free) | unpaid | paid | refunding | refunded | refund_failed
    payment_status: Mapped[str] = mapped_column(String(16), default="none")
    answers: Mapped[dict] = mapped_column(JSON, default=dict)  # may hold a phone: never log
    check_in_code: Mapped[str] = mapped_column(String(16))
    pay_deadline: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(String(255), default="")
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_in_by: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)


class ActivityEvent(Base):
    """Every transition of an activity (registration_id NULL) or of a registration."""
    __tablename__ = "activity_events"
    __table_args__ = (Index("ix_activity_events_activity", "activity_id", "id"),
                      Index("ix_activity_events_registration", "registration_id", "id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("activities.id",
                                                               ondelete="CASCADE"))
    registration_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))  # user|admin|merchant|system
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActivityReminder(Base):
    """A reminder sent: unique per registration and kind, so each goes out once."""
    __tablename__ = "activity_reminders"
    __table_args__ = (UniqueConstraint("registration_id", "kind",
                                       name="uq_activity_reminders_registration_kind"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    registration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("activity_registrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "24h", "2h"
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
