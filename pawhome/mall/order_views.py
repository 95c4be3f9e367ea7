"""Reading orders: the buyer's list with per-status counts (the "my orders" badges), an
order's detail with its timeline, the merchant's list and daily sales, the admin's search.
A buyer sees only their own orders and a merchant only theirs: anyone else gets 404.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import ORDER_STATES, Merchant, Order, OrderEvent, OrderItem
from pawhome.platform import topics
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.fields import QueryDate
from pawhome.platform.pagination import MAX_LIMIT, PageQuery, page_result
from pawhome.platform.resources import Resources

SHANGHAI = ZoneInfo("Asia/Shanghai")
SALES_MAX_DAYS = 92
OrderStatusFilter = Literal["pending_payment", "paid", "paid_waiting_group", "shipped",
                            "ready_for_pickup", "completed", "cancelled", "refunding",
                            "refunded"]


class OrderListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    status: OrderStatusFilter | None = None
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)

    @property
    def paging(self) -> PageQuery:
        return PageQuery(page=self.page, limit=self.limit)


class AdminOrderQuery(OrderListQuery):
    order_no: str | None = Field(None, min_length=1, max_length=32)
    user_id: int | None = Field(None, ge=1, le=2**53)
    merchant_id: int | None = Field(None, ge=1, le=2**53)
    date_from: QueryDate | None = None  # created on or after (Asia/Shanghai)
    date_to: QueryDate | None = None  # created on or before (Asia/Shanghai)


class SalesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    date_from: QueryDate
    date_to: QueryDate


def _utc(day: dt.date) -> dt.datetime:
    """Midnight of an Asia/Shanghai day as the naive UTC the tables store. Days at the ends
    of the calendar (0001-01-01) are moved in by one, so the conversion cannot overflow;
    no stored row is that old or that far ahead."""
    day = min(max(day, dt.date.min + dt.timedelta(days=1)), dt.date.max - dt.timedelta(days=1))
    local = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def item_view(item: OrderItem) -> dict[str, Any]:
    return {"id": item.id, "product_id": item.product_id, "sku_id": item.sku_id,
            "name": item.name, "image_url": item.image_url, "spec_text": item.spec_text,
            "unit_price": item.unit_price, "quantity": item.quantity,
            "line_total": item.line_total, "discount_share": item.discount_share,
            "refunded_quantity": item.refunded_quantity,
            "refunded_amount": item.refunded_amount}


def order_view(order: Order, items: Sequence[OrderItem], merchant_name: str, *,
               for_buyer: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": order.id, "order_no": order.order_no, "status": order.status,
        "user_id": order.user_id,
        "merchant": {"id": order.merchant_id, "name": merchant_name},
        "fulfilment": order.fulfilment, "address": order.address,
        "pickup_point": order.pickup_point, "delivery_window": order.delivery_window,
        "items": [item_view(i) for i in items],
        "goods_amount": order.goods_amount, "delivery_fee": order.delivery_fee,
        "discount_amount": order.discount_amount, "payable_amount": order.payable_amount,
        "paid_amount": order.paid_amount, "refunded_amount": order.refunded_amount,
        "price_breakdown": order.price_breakdown, "remark": order.remark,
        "carrier": order.carrier, "tracking_no": order.tracking_no,
        "pay_deadline": _iso(order.pay_deadline), "paid_at": _iso(order.paid_at),
        "shipped_at": _iso(order.shipped_at), "completed_at": _iso(order.completed_at),
        "cancelled_at": _iso(order.cancelled_at), "cancel_reason": order.cancel_reason,
        "auto_complete_at": _iso(order.auto_complete_at),
        "created_at": _iso(order.created_at),
    }
    if for_buyer:  # the buyer shows it at the counter; the merchant must be told it
        view["pickup_code"] = order.pickup_code
    return view


async def _views(session: AsyncSession, orders: Sequence[Order], *,
                 for_buyer: bool) -> list[dict[str, Any]]:
    if not orders:
        return []
    ids = [o.id for o in orders]
    items: dict[int, list[OrderItem]] = {i: [] for i in ids}
    for item in (await session.execute(select(OrderItem).where(OrderItem.order_id.in_(ids))
                                       .order_by(OrderItem.id))).scalars():
        items[item.order_id].append(item)
    names = dict((await session.execute(select(Merchant.user_id, Merchant.name).where(
        Merchant.user_id.in_({o.merchant_id for o in orders})))).all())
    return [order_view(o, items[o.id], names.get(o.merchant_id, ""), for_buyer=for_buyer)
            for o in orders]


async def _page(session: AsyncSession, conditions: list[ColumnElement[bool]],
                query: OrderListQuery, *, for_buyer: bool) -> dict[str, Any]:
    where = list(conditions)
    if query.status:
        where.append(Order.status == query.status)
    total = int((await session.execute(select(func.count()).select_from(Order)
                                       .where(*where))).scalar_one())
    rows = list((await session.execute(
        select(Order).where(*where).order_by(Order.created_at.desc(), Order.id.desc())
        .offset(query.paging.offset).limit(query.limit))).scalars())
    return page_result(await _views(session, rows, for_buyer=for_buyer), total, query.paging)


async def _counts(session: AsyncSession, condition: ColumnElement[bool]) -> dict[str, int]:
    found = dict((await session.execute(select(Order.status, func.count()).where(condition)
                                        .group_by(Order.status))).all())
    return {status: int(found.get(status, 0)) for status in ORDER_STATES}


async def list_my_orders(resources: Resources, user_id: int,
                         query: OrderListQuery) -> dict[str, Any]:
    """The buyer's orders, newest first, with `counts` per status for the badges."""
    async with resources.db.session() as session:
        page = await _page(session, [Order.user_id == user_id], query, for_buyer=True)
        page["counts"] = await _counts(session, Order.user_id == user_id)
        return page


async def list_merchant_orders(resources: Resources, merchant_id: int | None,
                               query: OrderListQuery) -> dict[str, Any]:
    """A merchant's orders (None: an admin, every merchant's), with counts per status."""
    condition = Order.merchant_id == merchant_id if merchant_id is not None \
        else Order.id.is_not(None)
    async with resources.db.session() as session:
        page = await _page(session, [condition], query, for_buyer=False)
        page["counts"] = await _counts(session, condition)
        return page


async def _timeline(session: AsyncSession, order_id: int) -> list[dict[str, Any]]:
    rows = (await session.execute(select(OrderEvent).where(OrderEvent.order_id == order_id)
                                  .order_by(OrderEvent.id))).scalars()
    return [{"from": e.from_status, "to": e.to_status, "action": e.action,
             "actor_type": e.actor_type, "reason": e.reason, "at": _iso(e.created_at)}
            for e in rows]


async def get_order(resources: Resources, order_id: int, *, buyer_id: int | None = None,
                    merchant_id: int | None = None, admin: bool = False) -> dict[str, Any]:
    """One order with its timeline, for its buyer, its merchant or an admin (else 404)."""
    async with resources.db.session() as session:
        order = await session.get(Order, order_id)
        visible = order is not None and (admin or (buyer_id is not None
                                                   and order.user_id == buyer_id)
                                         or (merchant_id is not None
                                             and order.merchant_id == merchant_id))
        if order is None or not visible:
            raise NotFound("No such order")
        view = (await _views(session, [order], for_buyer=buyer_id is not None or admin))[0]
        view["timeline"] = await _timeline(session, order.id)
        return view


async def admin_search(resources: Resources, query: AdminOrderQuery) -> dict[str, Any]:
    conditions: list[ColumnElement[bool]] = []
    if query.order_no:
        conditions.append(Order.order_no == query.order_no)
    if query.user_id:
        conditions.append(Order.user_id == query.user_id)
    if query.merchant_id:
        conditions.append(Order.merchant_id == query.merchant_id)
    if query.date_from:
        conditions.append(Order.created_at >= _utc(query.date_from))
    if query.date_to:
        conditions.append(Order.created_at < _utc(query.date_to) + dt.timedelta(days=1))
    async with resources.db.session() as session:
        return await _page(session, conditions, query, for_buyer=True)


async def sales_by_day(resources: Resources, merchant_id: int | None,
                       query: SalesQuery) -> dict[str, Any]:
    """Per Asia/Shanghai day: paid orders, their paid amount and what was refunded of them
    (fen). At most SALES_MAX_DAYS days."""
    if query.date_to < query.date_from:
        raise ValidationFailed(errors=[field_error("date_to", "before date_from")])
    days = (query.date_to - query.date_from).days + 1
    if days > SALES_MAX_DAYS:
        raise ValidationFailed(errors=[field_error("date_to",
                                                   f"at most {SALES_MAX_DAYS} days")])
    conditions = [Order.paid_at >= _utc(query.date_from),
                  Order.paid_at < _utc(query.date_to) + dt.timedelta(days=1)]
    if merchant_id is not None:
        conditions.append(Order.merchant_id == merchant_id)
    totals = {query.date_from + dt.timedelta(days=n): {"orders": 0, "paid_amount": 0,
                                                       "refunded_amount": 0}
              for n in range(days)}
    async with resources.db.session() as session:
        rows = (await session.execute(select(Order.paid_at, Order.paid_amount,
                                             Order.refunded_amount).where(*conditions))).all()
    for paid_at, paid_amount, refunded_amount in rows:
        if paid_at is None:
            continue
        day = paid_at.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).date()
        if day in totals:
            totals[day]["orders"] += 1
            totals[day]["paid_amount"] += int(paid_amount)
            totals[day]["refunded_amount"] += int(refunded_amount)
    items = [{"date": day.isoformat(), **values} for day, values in sorted(totals.items())]
    return {"items": items,
            "orders": sum(i["orders"] for i in items),
            "paid_amount": sum(i["paid_amount"] for i in items),
            "refunded_amount": sum(i["refunded_amount"] for i in items)}


# -- live topic -----------------------------------------------------------------------------------


async def _may_watch_order(resources: Resources, user_id: int, topic_id: str) -> bool:
    """"order:<id>" is watched by the order's buyer and its merchant (an open order page)."""
    if not topic_id.isdigit() or len(topic_id) > 18:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        order = await session.get(Order, int(topic_id))
    if order is None or user_id not in (order.user_id, order.merchant_id):
        raise NotFound("No such order")
    return True


topics.register_topic_kind("order", _may_watch_order)
