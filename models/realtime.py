"""Tables of the real-time domains: direct-message conversations and messages, the
notification centre, and WeChat subscribe-message quotas and sends."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow


class Conversation(Base):
    """One conversation per pair of users (user_a_id < user_b_id).

    `last_seq` is the per-conversation message sequence: a sender increments it with
    `UPDATE ... SET last_seq = last_seq + 1` inside the message's transaction, so the row lock
    serialises concurrent senders and a rollback leaves no gap.
    """
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("user_a_id", "user_b_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_a_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    user_b_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                           index=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationMember(Base):
    """A user's side of a conversation: read mark, hidden state, list ordering."""
    __tablename__ = "conversation_members"
    __table_args__ = (Index("ix_conversation_members_user_last", "user_id", "last_message_at"),
                      MYSQL_TABLE_ARGS)

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    peer_id: Mapped[int] = mapped_column(BigId)
    read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Hiding a conversation hides its messages up to this seq for this member only; a new
    # message makes the conversation visible again.
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    cleared_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),
                      UniqueConstraint("sender_id", "client_msg_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # text | image | share
    content: Mapped[dict] = mapped_column(JSON)
    client_msg_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    recalled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """One entry of a user's notification centre; bursts coalesce into one row by group_key
    (e.g. many likes on one post within the window: "A and 99 others liked your post")."""
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_category_read", "user_id", "category",
                            "read_at"),
                      Index("ix_notifications_user_group", "user_id", "group_key"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(16))  # like, comment, follow, mention, ...
    kind: Mapped[str] = mapped_column(String(32))
    group_key: Mapped[str | None] = mapped_column(String(128))
    actor_ids: Mapped[list] = mapped_column(JSON, default=list)  # most recent first, capped
    actor_count: Mapped[int] = mapped_column(Integer, default=0)
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SubscribeQuota(Base):
    """One-time subscribe-message authorisations a user granted per template
    (wx.requestSubscribeMessage); one is spent per send."""
    __tablename__ = "subscribe_quotas"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    template_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    remaining: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SubscribeSend(Base):
    """Every subscribe-message attempt: sent, failed (with WeChat's errcode) or skipped."""
    __tablename__ = "subscribe_sends"
    __table_args__ = (Index("ix_subscribe_sends_user_created", "user_id", "created_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # message, notification:<category>
    status: Mapped[str] = mapped_column(String(16))  # sent | failed | skipped
    errcode: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
