"""Pet-services booking tables: providers (clinics, grooming shops, boarding houses), their
staff and services, schedules (weekly hours, date overrides, breaks), holds, appointments
with their timeline, and the two tables that make double booking impossible in the
database: occupied slot units and boarding nights. docs/booking.md.

Times are naive UTC; a schedule's times are minutes of the day in Asia/Shanghai (no DST).
Money is integer fen.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

SERVICE_KINDS = ("vaccine", "grooming", "medical", "boarding")
OVERRIDE_KINDS = ("extra", "day_off", "holiday")
HOLD_STATES = ("held", "confirmed", "released", "expired")
APPOINTMENT_STATES = ("pending_confirmation", "confirmed", "checked_in", "completed",
                      "cancelled", "no_show")
DEPOSIT_STATES = ("none", "paid", "refunding", "refunded", "refund_failed")


class Provider(Base):
    """A clinic, grooming shop or boarding house, owned by a merchant account."""
    __tablename__ = "booking_providers"
    __table_args__ = (Index("ix_booking_providers_owner", "owner_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(255), default="")
    lat: Mapped[float] = mapped_column(Numeric(9, 6))
    lng: Mapped[float] = mapped_column(Numeric(9, 6))
    hours_text: Mapped[str] = mapped_column(String(128), default="")
    photos: Mapped[list[int]] = mapped_column(JSON, default=list)  # media ids
    phone: Mapped[str] = mapped_column(String(32), default="")
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)  # of 1..5 stars
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, closed
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Staff(Base):
    """A doctor or groomer of a provider."""
    __tablename__ = "booking_staff"
    __table_args__ = (Index("ix_booking_staff_provider", "provider_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_providers.id"))
    name: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(32), default="")
    photo_media_id: Mapped[int | None] = mapped_column(BigInteger)
    bio: Mapped[str] = mapped_column(String(500), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Their visible appointment reviews (pawhome/booking/reviews.py), like the provider's.
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Service(Base):
    """A bookable service of a provider. Slot services (vaccine, grooming, medical) take
    `duration_minutes` of one staff member (or of the provider when `uses_staff` is false);
    boarding is booked by nights against `capacity` rooms."""
    __tablename__ = "booking_services"
    __table_args__ = (
        Index("ix_booking_services_kind", "kind", "status"),
        Index("ix_booking_services_provider", "provider_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("deposit >= 0 AND deposit <= price", name="deposit_within_price"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_providers.id"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # SERVICE_KINDS
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    price: Mapped[int] = mapped_column(BigInteger)  # fen
    # fen paid online when booking (pawhome/booking/deposits.py); 0: all paid at the store
    deposit: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    pet_types: Mapped[list[str]] = mapped_column(JSON, default=list)  # [] = any
    max_weight_kg: Mapped[int | None] = mapped_column(Integer)
    buffer_before: Mapped[int] = mapped_column(Integer, default=0)  # minutes
    buffer_after: Mapped[int] = mapped_column(Integer, default=0)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    horizon_days: Mapped[int] = mapped_column(Integer, default=30)
    needs_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_deadline_hours: Mapped[int] = mapped_column(Integer, default=24)
    uses_staff: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity: Mapped[int] = mapped_column(Integer, default=1)  # boarding: rooms per night
    status: Mapped[str] = mapped_column(String(16), default="active")  # active, stopped
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StaffService(Base):
    """Which staff member performs which service."""
    __tablename__ = "booking_staff_services"

    staff_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_staff.id"),
                                          primary_key=True)
    service_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_services.id"),
                                            primary_key=True)


class WorkingHours(Base):
    """A weekly window of a staff member (or of the provider itself when staff_id is null):
    weekday 0 = Monday, minutes of the Asia/Shanghai day, end exclusive."""
    __tablename__ = "booking_hours"
    __table_args__ = (
        Index("ix_booking_hours_provider", "provider_id", "staff_id"),
        CheckConstraint("start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440",
                        name="window_in_day"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_providers.id"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class ScheduleOverride(Base):
    """A date's exception: extra hours, a day off, a holiday (no hours that date)."""
    __tablename__ = "booking_overrides"
    __table_args__ = (Index("ix_booking_overrides_provider_day", "provider_id", "day"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_providers.id"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger)  # null: the provider/everyone
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # OVERRIDE_KINDS
    start_minute: Mapped[int | None] = mapped_column(Integer)  # extra hours only
    end_minute: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(128), default="")


class ScheduleBreak(Base):
    """A break: every week on `weekday`, or on one `day`."""
    __tablename__ = "booking_breaks"
    __table_args__ = (Index("ix_booking_breaks_provider", "provider_id", "staff_id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_id: Mapped[int] = mapped_column(BigId, ForeignKey("booking_providers.id"))
    staff_id: Mapped[int | None] = mapped_column(BigInteger)  # null: the provider/everyone
    weekday: Mapped[int | None] = mapped_column(SmallInteger)
    day: Mapped[dt.date | None] = mapped_column(Date)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class AppointmentHold(Base):
    """A slot (or boarding nights) reserved for a few minutes before confirmation."""
    __tablename__ = "appointment_holds"
    __table_args__ = (Index("ix_appointment_holds_status_expires", "status", "expires_at"),
                      Index("ix_appointment_holds_user", "user_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId)
    provider_id: Mapped[int] = mapped_column(BigId)
    service_id: Mapped[int] = mapped_column(BigId)
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    pet_id: Mapped[int] = mapped_column(BigId)
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="held")  # HOLD_STATES
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    deposit: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # fen due
    remark: Mapped[str] = mapped_column(String(255), default="", server_default="")  # paid ones
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Appointment(Base):
    """A booked service for a pet."""
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_user_start", "user_id", "start_at"),
        Index("ix_appointments_provider_start", "provider_id", "start_at"),
        Index("ix_appointments_pet", "pet_id"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId)
    provider_id: Mapped[int] = mapped_column(BigId)
    owner_id: Mapped[int] = mapped_column(BigId)  # the provider's merchant account
    service_id: Mapped[int] = mapped_column(BigId)
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    pet_id: Mapped[int] = mapped_column(BigId)
    hold_id: Mapped[int] = mapped_column(BigId, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    price: Mapped[int] = mapped_column(BigInteger)  # fen, copied from the service
    # The deposit paid online (fen) and the hold it was paid on (the payable id; a reschedule
    # moves hold_id, never this); deposit_status: DEPOSIT_STATES.
    deposit: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    deposit_hold_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    deposit_status: Mapped[str] = mapped_column(String(16), default="none",
                                                server_default="none")
    deposit_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    remark: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(24))  # APPOINTMENT_STATES
    cancel_deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AppointmentEvent(Base):
    """Every transition of an appointment, with its actor and reason (the timeline)."""
    __tablename__ = "appointment_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    appointment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str] = mapped_column(String(24), default="")
    to_status: Mapped[str] = mapped_column(String(24))
    actor_type: Mapped[str] = mapped_column(String(16))  # user, provider, admin, system
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # when its `appointment` notification was written (pawhome/booking/appointment_notices.py)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class SlotUnit(Base):
    """One occupied time unit (UNIT_MINUTES long) of a resource — a staff member "s<id>" or a
    provider without staff "p<id>" — covered by a hold or an appointment, buffers included.
    The unique key is the double-booking rule: a second booking of the same unit fails on
    insert. A hold's units carry its expiry; an appointment's have none."""
    __tablename__ = "booking_slot_units"
    __table_args__ = (
        UniqueConstraint("resource", "unit_start", name="one_booking_per_unit"),
        Index("ix_booking_slot_units_hold", "hold_id"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource: Mapped[str] = mapped_column(String(24))
    unit_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    hold_id: Mapped[int] = mapped_column(BigId)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BoardingNight(Base):
    """A boarding service's rooms on one night (the Asia/Shanghai date it starts): taken
    with `UPDATE ... SET booked = booked + 1 WHERE booked < capacity` under the row lock."""
    __tablename__ = "booking_boarding_nights"
    __table_args__ = (
        UniqueConstraint("service_id", "night", name="one_row_per_night"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(BigId)
    night: Mapped[dt.date] = mapped_column(Date)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)
