"""Points tables: one balance row per user, the ledger of every movement (the truth the
balance is checked against), the admin-edited points rules, the nightly reconciliation
reports, and the inventory of virtual items bought with points. docs/points.md.

Points are integers. A balance never goes below zero: every change takes the balance row's
lock first (pawhome/points/ledger.py), and a CHECK constraint backs it up.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

REASONS = ("checkin", "checkin_bonus", "makeup_checkin", "order_completed", "order_refunded",
           "points_payment", "points_payment_refund", "points_mall", "points_mall_refund",
           "admin_adjust", "activity", "activity_refund", "expired")


class PointsAccount(Base):
    """A user's points balance: the row every change locks. earned/spent are running totals
    (spent as a positive number), kept with the balance so the reconciliation can check all
    three against the ledger."""
    __tablename__ = "points_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_total: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_total: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PointsEntry(Base):
    """The ledger: one row per change of a user's points, never updated. `idem_key` is
    unique per user: the same key twice changes nothing (the first row is the answer)."""
    __tablename__ = "points_ledger"
    __table_args__ = (UniqueConstraint("user_id", "idem_key"),
                      Index("ix_points_ledger_user_id", "user_id", "id"),
                      Index("ix_points_ledger_ref", "ref_type", "ref_id"),
                      Index("ix_points_ledger_expires_at", "expires_at"),
                      # the leaderboard rebuild's "who earned while it read"
                      Index("ix_points_ledger_created_at", "created_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32))  # REASONS
    ref_type: Mapped[str] = mapped_column(String(24), default="")  # order | checkin | ...
    ref_id: Mapped[str] = mapped_column(String(64), default="")  # an order id, a date, ...
    idem_key: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(String(255), default="")
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # an admin's adjustment
    # When points expire (POINTS_EXPIRY_DAYS > 0): the date an earning lapses.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PointsRules(Base):
    """The points rules admins edit (one row, id 1): what earns how much, daily caps, and
    the points payment rule. Read through pawhome/points/rules.py, which fills defaults."""
    __tablename__ = "points_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PointsReconciliation(Base):
    """One run of the nightly check that every balance equals the sum of its ledger."""
    __tablename__ = "points_reconciliations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    accounts_checked: Mapped[int] = mapped_column(Integer, default=0)
    drift_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"user_id", "balance", "ledger_sum", "drift"}], the first DRIFTS_KEPT of them.
    drifts: Mapped[list] = mapped_column(JSON, default=list)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class InventoryItem(Base):
    """How many of a virtual item (a SKU of a virtual product) a user holds."""
    __tablename__ = "inventory_items"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),
                      Index("ix_inventory_items_user_kind", "user_id", "kind"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    sku_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    product_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # virtual_pet_food | _toy | _accessory
    name: Mapped[str] = mapped_column(String(60))
    spec_text: Mapped[str] = mapped_column(String(255), default="")
    image_url: Mapped[str] = mapped_column(String(512), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InventoryMovement(Base):
    """Every change of an inventory item, keyed like the points ledger: a grant per order
    line, a consumption per use (the virtual pet's feed or play), each once per key."""
    __tablename__ = "inventory_movements"
    __table_args__ = (UniqueConstraint("user_id", "idem_key"),
                      Index("ix_inventory_movements_user_id", "user_id", "id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(Integer)
    quantity_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # order_fulfilled | consumed | ...
    ref_type: Mapped[str] = mapped_column(String(24), default="")
    ref_id: Mapped[str] = mapped_column(String(64), default="")
    idem_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
