"""User feedback: what a user sends (category, text, images, contact, app and device), the
staff's replies, and every status change. pawhome/feedback/, docs/feedback.md.

A ticket moves open → replied → closed (reopen: closed → open); `feedback_events` records
each transition with its actor, so the timeline a user and the staff see is the table's rows.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_user", "user_id", "id"),  # a user's list, newest first
        Index("ix_feedback_user_created", "user_id", "created_at"),  # the submission limit
        Index("ix_feedback_status", "status", "id"),  # the staff queue
        Index("ix_feedback_category_status", "category", "status", "id"),
        Index("ix_feedback_created", "created_at"),  # daily statistics
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    category: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    media_ids: Mapped[list] = mapped_column(JSON, default=list)
    contact: Mapped[str] = mapped_column(String(64), default="")
    app_version: Mapped[str] = mapped_column(String(32), default="")
    device: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|replied|closed
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    last_replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)


class FeedbackReply(Base):
    """A staff member's answer to a ticket; the user sees it and is notified."""
    __tablename__ = "feedback_replies"
    __table_args__ = (Index("ix_feedback_replies_feedback", "feedback_id", "id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    feedback_id: Mapped[int] = mapped_column(BigId, ForeignKey("feedback.id",
                                                               ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(BigId)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedbackEvent(Base):
    """Every transition of a ticket, with who made it (the timeline)."""
    __tablename__ = "feedback_events"
    __table_args__ = (Index("ix_feedback_events_feedback", "feedback_id", "id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    feedback_id: Mapped[int] = mapped_column(BigId, ForeignKey("feedback.id",
                                                               ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16))
    actor_type: Mapped[str] = mapped_column(String(16))  # user | admin
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
