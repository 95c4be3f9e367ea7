"""The mall home's admin-configured content: banners, pop-ups with display rules, and the
products an admin picked for each product slot. docs/promotions.md ("Home slots").

Times are naive UTC like every timestamp; a null start or end is open. Who saw which pop-up
is a per-user record in Redis (pawhome/promotions/home.py), not a table.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

LINK_TYPES = ("none", "product", "category", "page", "url")
POPUP_RULES = ("once", "daily", "new_users")
SLOTS = ("recommended", "hot", "group_buy")


class HomeBanner(Base):
    __tablename__ = "home_banners"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(64), default="")
    image_url: Mapped[str] = mapped_column(String(512))
    link_type: Mapped[str] = mapped_column(String(16), default="none")  # LINK_TYPES
    link_value: Mapped[str] = mapped_column(String(512), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)  # smaller first, then id
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class HomePopup(Base):
    __tablename__ = "home_popups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(64), default="")
    image_url: Mapped[str] = mapped_column(String(512))
    link_type: Mapped[str] = mapped_column(String(16), default="none")
    link_value: Mapped[str] = mapped_column(String(512), default="")
    rule: Mapped[str] = mapped_column(String(16), default="once")  # POPUP_RULES
    sort: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class HomeSlotItem(Base):
    """A product an admin picked for a slot, in order."""
    __tablename__ = "home_slot_items"
    __table_args__ = (UniqueConstraint("slot", "product_id"),
                      Index("ix_home_slot_items_slot_sort", "slot", "sort"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slot: Mapped[str] = mapped_column(String(16))  # SLOTS
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="CASCADE"))
    sort: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


