"""Appointment reviews: after a completed appointment its user rates it (1-5), writes a text
and adds photos, once; the provider's owner replies once. pawhome/booking/reviews.py,
docs/booking.md ("Reviews").

One review per appointment (a unique key), so a double submit makes one review. A review
counts in its provider's and its staff member's rating (`rating_count` / `rating_sum` on
booking_providers and booking_staff) while `counted` is set, that is while it is visible.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId
from models.reviews import ReviewColumns


class AppointmentReview(ReviewColumns, Base):
    __tablename__ = "appointment_reviews"
    __table_args__ = (
        Index("ix_appointment_reviews_provider_status", "provider_id", "status", "id"),
        Index("ix_appointment_reviews_provider_status_rating", "provider_id", "status",
              "rating", "id"),
        Index("ix_appointment_reviews_staff_status", "staff_id", "status", "id"),
        Index("ix_appointment_reviews_user", "user_id", "id"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        MYSQL_TABLE_ARGS)

    # One review per appointment: the unique key that makes a double submit one review.
    appointment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("appointments.id", ondelete="CASCADE"), unique=True)
    provider_id: Mapped[int] = mapped_column(BigId)
    merchant_id: Mapped[int] = mapped_column(BigId)  # the provider's owner when it was written
    staff_id: Mapped[int | None] = mapped_column(BigInteger)
    service_id: Mapped[int] = mapped_column(BigId)
