"""Product reviews: a buyer's rating (1-5), text and photos of one line of a completed order,
the merchant's one reply, and each product's counts per star. docs/mall.md ("Reviews").

One review per order line (a unique key), so a double submit makes one review. A review
counts in its product's rating (`products.rating_count` / `rating_sum` and the counts per star
here) while `counted` is set: from submission until moderation takes it down.
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
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

# pending: waiting for moderation (the author sees it) -> visible | hidden (held for an admin)
# | removed (taken down, with status_reason).
REVIEW_STATES = ("pending", "visible", "hidden", "removed")


class ReviewColumns:
    """What every review holds besides what it is about: shared by product reviews and
    appointment reviews (models/booking_reviews.py), which the same code moderates."""
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))  # the reviewer
    rating: Mapped[int] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(Text)
    media_ids: Mapped[list] = mapped_column(JSON, default=list)  # the reviewer's ready images
    has_images: Mapped[bool] = mapped_column(Boolean, default=False)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # REVIEW_STATES
    status_reason: Mapped[str] = mapped_column(String(255), default="")
    # In the rating summary (set while visible, cleared when taken down).
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_text: Mapped[str] = mapped_column(String(500), default="")
    reply_by: Mapped[int | None] = mapped_column(BigInteger)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the merchant was told (the first time the review became visible).
    merchant_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ProductReview(ReviewColumns, Base):
    __tablename__ = "product_reviews"
    __table_args__ = (
        Index("ix_product_reviews_product_status", "product_id", "status", "id"),
        Index("ix_product_reviews_product_status_rating", "product_id", "status", "rating",
              "id"),
        Index("ix_product_reviews_product_status_images", "product_id", "status", "has_images",
              "id"),
        Index("ix_product_reviews_user", "user_id", "id"),
        Index("ix_product_reviews_merchant_status", "merchant_id", "status", "id"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        MYSQL_TABLE_ARGS)

    # One review per order line: the unique key that makes a double submit one review.
    order_item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("order_items.id", ondelete="CASCADE"), unique=True)
    order_id: Mapped[int] = mapped_column(BigInteger)
    product_id: Mapped[int] = mapped_column(BigInteger)
    sku_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    spec_text: Mapped[str] = mapped_column(String(255), default="")  # the line's, as bought


class ProductRatingStats(Base):
    """The counts per star of a product's counted reviews (the average's count and sum stay
    on `products`, which lists sort and show). Written in the review's transaction, after
    the product row is locked, so concurrent reviews add up exactly."""
    __tablename__ = "product_rating_stats"

    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="CASCADE"),
                                            primary_key=True, autoincrement=False)
    star_1: Mapped[int] = mapped_column(Integer, default=0)
    star_2: Mapped[int] = mapped_column(Integer, default=0)
    star_3: Mapped[int] = mapped_column(Integer, default=0)
    star_4: Mapped[int] = mapped_column(Integer, default=0)
    star_5: Mapped[int] = mapped_column(Integer, default=0)
    with_images: Mapped[int] = mapped_column(Integer, default=0)
