"""Coupon tables: templates (what an admin or a merchant offers), the coupons users hold
(one row per claimed coupon, in the wallet) and each coupon's trail of transitions.
docs/promotions.md ("Coupons").

Money is integer fen. A template's `issued_count` never exceeds `total_quantity`: claims
lock the template row and a CHECK constraint backs the count.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

COUPON_KINDS = ("threshold", "percent", "no_threshold")  # 满减, 折扣 (capped), 无门槛
COUPON_SCOPES = ("all", "category", "merchant", "products")
CLAIM_METHODS = ("button", "code")
TEMPLATE_STATES = ("active", "stopped")
# Stored states of a held coupon; "expired" is computed (an unused coupon past valid_until).
COUPON_STATES = ("unused", "locked", "used")


class CouponTemplate(Base):
    """What is offered: the discount, where it applies, how long a claimed coupon lasts,
    how many exist and who may claim them. `merchant_id` is the issuing shop (its coupons
    only ever discount that shop's goods); NULL for a platform coupon made by an admin."""
    __tablename__ = "coupon_templates"
    __table_args__ = (
        Index("ix_coupon_templates_merchant_status", "merchant_id", "status"),
        Index("ix_coupon_templates_status_claim", "status", "claim_method"),
        CheckConstraint("issued_count >= 0 AND issued_count <= total_quantity",
                        name="issued_within_quantity"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("merchants.user_id"))
    created_by: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16))  # COUPON_KINDS
    amount_off: Mapped[int] = mapped_column(BigInteger, default=0)  # fen (threshold, none)
    percent_off: Mapped[int] = mapped_column(Integer, default=0)  # 1..90 (percent)
    max_discount: Mapped[int] = mapped_column(BigInteger, default=0)  # fen cap (percent)
    min_spend: Mapped[int] = mapped_column(BigInteger, default=0)  # fen, eligible goods
    scope: Mapped[str] = mapped_column(String(16), default="all")  # COUPON_SCOPES
    scope_category_id: Mapped[int | None] = mapped_column(BigInteger)
    scope_merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    scope_product_ids: Mapped[list] = mapped_column(JSON, default=list)
    # Fixed dates (starts_at..ends_at) or valid_days after claiming (then both NULL).
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    valid_days: Mapped[int] = mapped_column(Integer, default=0)
    total_quantity: Mapped[int] = mapped_column(Integer)
    issued_count: Mapped[int] = mapped_column(Integer, default=0)
    per_user_limit: Mapped[int] = mapped_column(Integer, default=1)
    new_users_only: Mapped[bool] = mapped_column(Boolean, default=False)
    claim_method: Mapped[str] = mapped_column(String(8), default="button")  # CLAIM_METHODS
    code: Mapped[str | None] = mapped_column(String(32), unique=True)  # claim_method code
    status: Mapped[str] = mapped_column(String(16), default="active")  # TEMPLATE_STATES
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UserCoupon(Base):
    """A coupon in a user's wallet. The validity is fixed at claim time; `order_id` is the
    order that locked (then used) it. `claim_key`: the Idempotency-Key of the claim that
    made it, so the same claim retried returns this coupon instead of another."""
    __tablename__ = "user_coupons"
    __table_args__ = (
        Index("ix_user_coupons_user_status_until", "user_id", "status", "valid_until"),
        Index("ix_user_coupons_template_user", "template_id", "user_id"),
        Index("ix_user_coupons_order", "order_id"),
        UniqueConstraint("user_id", "claim_key"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("coupon_templates.id"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="unused")  # COUPON_STATES
    claim_key: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # fen, when used
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CouponEvent(Base):
    """Every transition of a held coupon (claim, lock, use, release, return), in order."""
    __tablename__ = "coupon_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_coupon_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("user_coupons.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # claim | lock | use | release | return
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
