"""Group-buy (拼团) tables: a SKU's rule (group size, group price, time to fill, limit per
user), the groups opened under it, their members (one per order) and each group's trail of
transitions. docs/promotions.md ("Group-buy").

Money is integer fen. A group never holds more seats than its size: seats are taken under
the group's row lock, and CHECK constraints back both counts.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

RULE_STATES = ("active", "stopped")
# opening: the opener's order is unpaid (nobody else may join yet); open: joinable until
# expires_at; filled: every seat paid (the orders proceed); expired: the time ran out
# unfilled (the paid members are refunded); failed: the opener's order was cancelled unpaid.
GROUP_STATES = ("opening", "open", "filled", "expired", "failed")
# pending: a seat held by an unpaid order; paid: paid, waiting for the group (or the group
# filled); cancelled: the unpaid order was cancelled, the seat freed; refunding / refunded:
# the group expired (or failed), the money goes back.
MEMBER_STATES = ("pending", "paid", "cancelled", "refunding", "refunded")


class GroupBuyRule(Base):
    """A SKU's group-buy terms (one rule per SKU), set by its shop or an admin."""
    __tablename__ = "group_buy_rules"
    __table_args__ = (
        Index("ix_group_buy_rules_product_status", "product_id", "status"),
        Index("ix_group_buy_rules_merchant", "merchant_id"),
        CheckConstraint("group_size >= 2", name="group_of_two_or_more"),
        CheckConstraint("group_price > 0", name="group_price_positive"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku_id: Mapped[int] = mapped_column(BigId, ForeignKey("skus.id"), unique=True)
    product_id: Mapped[int] = mapped_column(BigId)
    merchant_id: Mapped[int] = mapped_column(BigId)
    group_size: Mapped[int] = mapped_column(Integer)
    group_price: Mapped[int] = mapped_column(BigInteger)  # fen, per unit
    time_limit_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    limit_per_user: Mapped[int] = mapped_column(Integer, default=1)  # units, live groups
    status: Mapped[str] = mapped_column(String(16), default="active")  # RULE_STATES
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupBuy(Base):
    """One group: its terms copied from the rule when opened (a later rule change does not
    move a running group), its seats and its state."""
    __tablename__ = "group_buys"
    __table_args__ = (
        Index("ix_group_buys_status_expires", "status", "expires_at"),
        Index("ix_group_buys_sku_status", "sku_id", "status"),
        Index("ix_group_buys_rule", "rule_id"),
        CheckConstraint("seats_taken >= 0 AND seats_taken <= size", name="seats_within_size"),
        CheckConstraint("paid_count >= 0 AND paid_count <= seats_taken",
                        name="paid_within_seats"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_buy_rules.id"))
    sku_id: Mapped[int] = mapped_column(BigId)
    product_id: Mapped[int] = mapped_column(BigId)
    merchant_id: Mapped[int] = mapped_column(BigId)
    opener_id: Mapped[int] = mapped_column(BigId)
    size: Mapped[int] = mapped_column(Integer)
    group_price: Mapped[int] = mapped_column(BigInteger)
    time_limit_minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="opening")  # GROUP_STATES
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)  # pending + paid members
    paid_count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # set when open
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # filled/expired/failed
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupBuyMember(Base):
    """A buyer's seat in a group, held by one order."""
    __tablename__ = "group_buy_members"
    __table_args__ = (
        Index("ix_group_buy_members_group_status", "group_id", "status"),
        Index("ix_group_buy_members_user_rule", "user_id", "rule_id", "status"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("group_buys.id"))
    rule_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(BigId)
    order_id: Mapped[int] = mapped_column(BigId, unique=True)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    is_opener: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # MEMBER_STATES
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupBuyEvent(Base):
    """Every transition of a group and of its members (open, join, pay, fill, expire,
    fail, cancel, refund), in order."""
    __tablename__ = "group_buy_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("group_buys.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
