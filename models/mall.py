"""Mall tables: merchants and their delivery set-up, categories, products and SKUs with a
stock ledger, product favorites and footprints, addresses, the cart, orders with their items
and their event trail, and after-sale (refund) requests. docs/mall.md.

Money is integer fen (BigInteger) everywhere; a SKU's stock never goes below zero (a CHECK
constraint backs the conditional UPDATE that decrements it), except -1, which means unlimited
(virtual goods: pawhome/mall/stock.py never decrements it). A SKU may carry a points price
(docs/points.md).
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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

PRODUCT_KINDS = ("physical", "virtual_pet_food", "virtual_pet_toy", "virtual_pet_accessory")
VIRTUAL_KINDS = PRODUCT_KINDS[1:]
PRODUCT_STATES = ("draft", "reviewing", "on_sale", "off_sale", "rejected")
FULFILMENTS = ("express", "local", "pickup")
ORDER_STATES = ("pending_payment", "paid", "paid_waiting_group", "shipped",
                "ready_for_pickup", "completed", "cancelled", "refunding", "refunded")
REFUND_STATES = ("requested", "approved", "rejected", "refunding", "refunded", "failed",
                 "withdrawn")


class Merchant(Base):
    """A shop: one per user with role merchant. Its delivery set-up lives here (express fee
    rules, local delivery fee and time windows, whether pick-up is offered); the areas it
    delivers to locally and its pick-up points are rows of their own."""
    __tablename__ = "merchants"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64))
    logo_url: Mapped[str] = mapped_column(String(512), default="")
    # The merchant's uploaded image the logo_url was made from (None: a URL given as is).
    logo_media_id: Mapped[int | None] = mapped_column(BigInteger)
    intro: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    express_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    express_base_fee: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    express_free_over: Mapped[int | None] = mapped_column(BigInteger)  # goods total, fen
    # [{"province": "西藏自治区", "surcharge": 1000}, {"province": "...", "surcharge": null}]
    # null: not deliverable to that province.
    express_regions: Mapped[list] = mapped_column(JSON, default=list)
    local_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    local_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    local_free_over: Mapped[int | None] = mapped_column(BigInteger)
    local_windows: Mapped[list] = mapped_column(JSON, default=list)  # ["09:00-12:00", ...]
    pickup_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeliveryArea(Base):
    """Where a merchant delivers locally: a district, optionally narrowed to communities."""
    __tablename__ = "delivery_areas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.user_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(32))
    communities: Mapped[list] = mapped_column(JSON, default=list)  # [] = the whole district
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PickupPoint(Base):
    __tablename__ = "pickup_points"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.user_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(20), default="")
    hours: Mapped[str] = mapped_column(String(64), default="")  # "09:00-21:00"
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("categories.id"),
                                                  index=True)
    name: Mapped[str] = mapped_column(String(32))
    icon: Mapped[str] = mapped_column(String(512), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Product(Base):
    """A merchant's product. price_min/price_max summarise its live SKUs (kept by the
    catalogue's writes) so lists filter and sort without joining SKUs; stock lives on the
    SKUs only (orders lock SKU rows, never the product's)."""
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_status_category", "status", "category_id", "id"),
        Index("ix_products_status_sales", "status", "sales_count"),
        Index("ix_products_status_price", "status", "price_min"),
        Index("ix_products_merchant_status", "merchant_id", "status"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.user_id", ondelete="CASCADE"))
    category_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("categories.id"))
    # physical, or a virtual kind (VIRTUAL_KINDS): bought with points, delivered at once
    # into the buyer's inventory (pawhome/points/inventory.py), never shipped.
    kind: Mapped[str] = mapped_column(String(32), default="physical")
    name: Mapped[str] = mapped_column(String(60))
    subtitle: Mapped[str] = mapped_column(String(120), default="")
    description: Mapped[str] = mapped_column(Text)
    media_ids: Mapped[list] = mapped_column(JSON, default=list)  # ready images, ordered
    video_media_id: Mapped[int | None] = mapped_column(BigInteger)
    brand: Mapped[str] = mapped_column(String(32), default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    pet_types: Mapped[list] = mapped_column(JSON, default=list)  # models.community.SPECIES
    # [{"name": "口味", "values": ["鸡肉", "牛肉"]}, {"name": "规格", "values": ["1kg", "5kg"]}]
    spec_attrs: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # PRODUCT_STATES
    status_reason: Mapped[str] = mapped_column(String(255), default="")
    price_min: Mapped[int] = mapped_column(BigInteger, default=0)
    price_max: Mapped[int] = mapped_column(BigInteger, default=0)
    sales_count: Mapped[int] = mapped_column(BigInteger, default=0)
    favorite_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    on_sale_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Sku(Base):
    """One buyable combination of a product's spec values. `stock` only moves through
    conditional UPDATEs that never take it below zero, each with a stock_ledger row."""
    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("product_id", "spec_key"),
        CheckConstraint("stock >= -1", name="stock_valid"),  # -1: unlimited
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("points_price >= 0", name="points_price_not_negative"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="CASCADE"))
    spec_values: Mapped[list] = mapped_column(JSON, default=list)  # in spec_attrs order
    spec_key: Mapped[str] = mapped_column(String(255))  # the values joined: unique per product
    spec_text: Mapped[str] = mapped_column(String(255), default="")  # "口味:鸡肉; 规格:1kg"
    price: Mapped[int] = mapped_column(BigInteger)  # fen
    original_price: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    # Points that buy one instead of the cash price (0: not for points). With price 0, the
    # SKU is sold for points only (docs/points.md "Points payment").
    points_price: Mapped[int] = mapped_column(BigInteger, default=0)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    weight_g: Mapped[int] = mapped_column(Integer, default=0)
    image_media_id: Mapped[int | None] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(64), default="")
    purchase_limit: Mapped[int] = mapped_column(Integer, default=0)  # 0: none (999 a line)
    sales_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class StockMovement(Base):
    """The stock ledger: every change of a SKU's stock, with why and who."""
    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_stock_movements_sku_id", "sku_id", "id"),
                      Index("ix_stock_movements_ref", "ref_type", "ref_id"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sku_id: Mapped[int] = mapped_column(BigId, ForeignKey("skus.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    stock_after: Mapped[int] = mapped_column(Integer)
    # initial | adjust | order_placed | order_cancelled | refund_restock
    reason: Mapped[str] = mapped_column(String(32))
    ref_type: Mapped[str] = mapped_column(String(16), default="")  # order | refund | ""
    ref_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductFavorite(Base):
    __tablename__ = "product_favorites"
    __table_args__ = (Index("ix_product_favorites_user_created", "user_id", "created_at"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductView(Base):
    """Browse footprints: the last time a user opened a product (one row per pair)."""
    __tablename__ = "product_views"
    __table_args__ = (Index("ix_product_views_user_viewed", "user_id", "viewed_at"),
                      MYSQL_TABLE_ARGS)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    product_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    viewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Address(Base):
    __tablename__ = "addresses"
    __table_args__ = (Index("ix_addresses_user_deleted", "user_id", "deleted_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    contact_name: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(20))
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(32))
    community: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(128))
    tag: Mapped[str] = mapped_column(String(16), default="")  # 家 / 公司 / ...
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("user_id", "sku_id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(BigId, ForeignKey("skus.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer)
    selected: Mapped[bool] = mapped_column(Boolean, default=True)
    price_when_added: Mapped[int] = mapped_column(BigInteger)  # fen: flags "price changed"
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Order(Base):
    """One merchant's part of a checkout. Amounts in fen; `price_breakdown` lists each line
    of the price (goods, delivery, then discounts: coupons and points slot in as lines of
    their own), so payable = sum of the breakdown."""
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_status_created", "user_id", "status", "created_at"),
        Index("ix_orders_merchant_status_created", "merchant_id", "status", "created_at"),
        Index("ix_orders_status_deadline", "status", "pay_deadline"),
        Index("ix_orders_status_auto_complete", "status", "auto_complete_at"),
        Index("ix_orders_checkout", "user_id", "checkout_key"),
        CheckConstraint("payable_amount >= 0", name="payable_not_negative"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    merchant_id: Mapped[int] = mapped_column(BigId, ForeignKey("merchants.user_id"))
    # The Idempotency-Key of the checkout that made it (one checkout: one order per merchant).
    checkout_key: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(24), default="pending_payment")  # ORDER_STATES
    fulfilment: Mapped[str] = mapped_column(String(16))  # FULFILMENTS, or "virtual"
    address: Mapped[dict | None] = mapped_column(JSON)  # snapshot (express, local)
    pickup_point: Mapped[dict | None] = mapped_column(JSON)  # snapshot (pickup)
    delivery_window: Mapped[str] = mapped_column(String(32), default="")  # local delivery
    goods_amount: Mapped[int] = mapped_column(BigInteger)
    delivery_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    payable_amount: Mapped[int] = mapped_column(BigInteger)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    price_breakdown: Mapped[list] = mapped_column(JSON, default=list)
    remark: Mapped[str] = mapped_column(String(200), default="")
    carrier: Mapped[str] = mapped_column(String(32), default="")
    tracking_no: Mapped[str] = mapped_column(String(64), default="")
    pickup_code: Mapped[str] = mapped_column(String(16), default="")
    # The status before refunding (a refund that is rejected or fails goes back to it).
    status_before_refund: Mapped[str] = mapped_column(String(24), default="")
    pay_deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    auto_complete_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrderItem(Base):
    """A line of an order, snapshotted at checkout (the product may change or go later)."""
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"),
                                          index=True)
    product_id: Mapped[int] = mapped_column(BigInteger)
    sku_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(60))
    image_url: Mapped[str] = mapped_column(String(512), default="")
    spec_text: Mapped[str] = mapped_column(String(255), default="")
    unit_price: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    line_total: Mapped[int] = mapped_column(BigInteger)
    # This line's share of the order's discounts (so a partial refund returns what was paid).
    discount_share: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)


class OrderEvent(Base):
    """The order's timeline: every status transition, with who and why."""
    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id", "order_id", "id"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    from_status: Mapped[str] = mapped_column(String(24), default="")
    to_status: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(32))  # place, pay, ship, cancel, ...
    actor_type: Mapped[str] = mapped_column(String(16))  # buyer | merchant | admin | system
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefundRequest(Base):
    """After-sale: a buyer asks for (part of) an order's money back. The money itself moves
    through payments (payment_refunds, keyed by refund_no as WeChat's out_refund_no)."""
    __tablename__ = "refund_requests"
    __table_args__ = (Index("ix_refund_requests_order", "order_id", "id"),
                      Index("ix_refund_requests_merchant_status", "merchant_id", "status"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="requested")  # REFUND_STATES
    reason: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    media_ids: Mapped[list] = mapped_column(JSON, default=list)
    lines: Mapped[list] = mapped_column(JSON, default=list)  # [{item_id, quantity, amount}]
    amount: Mapped[int] = mapped_column(BigInteger)
    restock: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    decision_reason: Mapped[str] = mapped_column(String(255), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
