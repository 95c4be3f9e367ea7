"""Service records: what a provider wrote about a pet at the end of an appointment (a
vaccine given, a grooming, a medical visit, a stay) — the pet's history, read by its owner.
pawhome/booking/records.py, docs/booking.md ("Service records").
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
