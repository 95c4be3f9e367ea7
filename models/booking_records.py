"""Service records — what a provider wrote about a pet at the end of an appointment (a
vaccine given, a grooming, a medical visit, a stay), the pet's history read by its owner —
and the reminders booking sends (before an appointment, before a vaccine's next dose).
pawhome/booking/records.py, pawhome/booking/reminders.py, docs/booking.md.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Date, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow


class ServiceRecord(Base):
    """One record an appointment (at most), kept with the pet it is about."""
    __tablename__ = "service_records"
    __table_args__ = (Index("ix_service_records_pet", "pet_id", "id"),
                      Index("ix_service_records_due", "next_due_on"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    appointment_id: Mapped[int] = mapped_column(BigId, unique=True)
    pet_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(BigId)  # the pet's owner when it was written
    provider_id: Mapped[int] = mapped_column(BigId)
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # the service's kind (SERVICE_KINDS)
    details: Mapped[dict] = mapped_column(JSON)  # per kind: pawhome/booking/records.py
    media_ids: Mapped[list] = mapped_column(JSON, default=list)  # the provider's images
    next_due_on: Mapped[dt.date | None] = mapped_column(Date)  # a vaccine's next dose
    written_by: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


REMINDER_KINDS = ("appointment", "vaccine_due")
REMINDER_STATES = ("pending", "sent", "cancelled")


class BookingReminder(Base):
    """A reminder due at a moment: before an appointment, or before a vaccine's next dose.
    Sent once by the beat job (pawhome/booking/reminders.py), late if the workers were down,
    never twice: `status` moves pending → sent in the transaction that writes the
    notification. `dedupe_key` makes scheduling the same reminder twice a no-op."""
    __tablename__ = "booking_reminders"
    __table_args__ = (Index("ix_booking_reminders_due", "status", "due_at"),
                      Index("ix_booking_reminders_appointment", "appointment_id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # REMINDER_KINDS
    user_id: Mapped[int] = mapped_column(BigId)
    pet_id: Mapped[int] = mapped_column(BigId)
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    record_id: Mapped[int | None] = mapped_column(BigInteger)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)  # what the notification says
    status: Mapped[str] = mapped_column(String(16), default="pending")  # REMINDER_STATES
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
