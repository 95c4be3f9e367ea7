"""After-sale: a buyer asks for money back for some or all of an order's lines (with a reason
and photos); the merchant approves or rejects, an admin may decide either way (arbitration,
including over a merchant's rejection). Approval asks pawhome.payments to refund (WeChat's
out_refund_no is the request's refund_no); the refund's settlement comes back through
`settle`, which marks lines refunded, returns stock when the goods never left, and moves
the order on.

    requested ──approve──▶ refunding ──settled: success──▶ refunded
        │  └──reject──▶ rejected (an admin may still approve)  └─ abnormal/closed ─▶ failed
        └──withdraw──▶ withdrawn

What a line refunds is what was paid for it: its total less its share of the order's
discounts, in proportion to the quantity; the last units of a line take the remainder so a
line never refunds more or less than was paid. Refunding everything before shipping also
returns the delivery fee. A request that returns no money (lines paid entirely with points)
has nothing to send to WeChat Pay: approving it settles it at once, and the points come back
through the `order_refunded` hook like any refund's.
"""
from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, OrderItem, RefundRequest
from models.payments import PaymentRefund
from pawhome.mall import order_hooks, order_states, orders, stock
from pawhome.mall.order_states import ActorType
from pawhome.media.uploads import require_ready
from pawhome.messaging import notifications
from pawhome.payments import payments
from pawhome.platform import audit, outbox
from pawhome.platform.errors import (
    Conflict,
    NotFound,
    OrderStateConflict,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import MAX_LIMIT, PageQuery, page_result
from pawhome.platform.resources import Resources

SOURCE_TYPE = "refund_request"  # what a refund request is to pawhome.payments
FORGET_TASK = "default.forget_products"
RefundStatus = Literal["requested", "approved", "rejected", "refunding", "refunded", "failed",
                       "withdrawn"]
OPEN = ("requested", "approved", "refunding")


class RefundLineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: int = Field(ge=1, le=2**53)
    quantity: int = Field(ge=1, le=999)


class RefundBody(BaseModel):
    """Without `lines`: everything not refunded yet."""
    model_config = ConfigDict(extra="forbid")
    lines: list[RefundLineBody] | None = Field(None, min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    description: str = Field("", max_length=500)
    media_ids: list[int] = Field(default_factory=list, max_length=9)


class RefundListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    status: RefundStatus | None = None
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)


def new_refund_no() -> str:
    return f"R{secrets.randbelow(10**18):018d}"


def line_refund(item: OrderItem, quantity: int) -> int:
    """Fen refunded for `quantity` more units of a line (see the module docstring)."""
    paid = item.line_total - item.discount_share
    remaining = item.quantity - item.refunded_quantity
    if quantity >= remaining:
        return paid - item.refunded_amount
    return paid * quantity // item.quantity


def view(request: RefundRequest) -> dict[str, Any]:
    return {"id": request.id, "refund_no": request.refund_no, "order_id": request.order_id,
            "user_id": request.user_id, "merchant_id": request.merchant_id,
            "status": request.status, "reason": request.reason,
            "description": request.description, "media_ids": request.media_ids,
            "lines": request.lines, "amount": request.amount, "restock": request.restock,
            "decision_reason": request.decision_reason,
            "decided_at": request.decided_at.isoformat() + "Z" if request.decided_at else None,
            "refunded_at": request.refunded_at.isoformat() + "Z" if request.refunded_at else None,
            "created_at": request.created_at.isoformat() + "Z"}


async def _lines_and_amount(session: AsyncSession, order: Order,
                            body: RefundBody) -> tuple[list[dict[str, int]], int]:
    items = {i.id: i for i in await orders.items_of(session, order.id)}
    asked: dict[int, int] = {}
    if body.lines is None:
        asked = {i.id: i.quantity - i.refunded_quantity for i in items.values()
                 if i.quantity > i.refunded_quantity}
    else:
        for index, line in enumerate(body.lines):
            if line.item_id not in items:
                raise ValidationFailed(errors=[field_error(f"lines.{index}.item_id",
                                                           "not a line of this order")])
            asked[line.item_id] = asked.get(line.item_id, 0) + line.quantity
    problems = [field_error("lines", f"line {item_id}: only "
                                     f"{items[item_id].quantity - items[item_id].refunded_quantity}"
                                     " left to refund")
                for item_id, quantity in asked.items()
                if quantity > items[item_id].quantity - items[item_id].refunded_quantity]
    if problems or not asked:
        raise ValidationFailed("Nothing of this to refund", errors=problems or [
            field_error("lines", "everything is refunded already")])
    lines = [{"item_id": item_id, "quantity": quantity,
              "amount": line_refund(items[item_id], quantity)}
             for item_id, quantity in sorted(asked.items())]
    amount = sum(line["amount"] for line in lines)
    everything = all(items[i].refunded_quantity + asked.get(i, 0) == items[i].quantity
                     for i in items)
    if everything and order.status in order_states.NOT_SENT:
        amount = order.paid_amount - order.refunded_amount  # the delivery fee goes back too
    return lines, amount


async def _open_request(session: AsyncSession, order: Order, body: RefundBody, *,
                        actor_type: ActorType, actor_id: int | None) -> RefundRequest:
    """A refund request for a locked order, which turns `refunding`. Caller commits."""
    order_states.check(order, "request_refund")
    lines, amount = await _lines_and_amount(session, order, body)
    request = RefundRequest(refund_no=new_refund_no(), order_id=order.id, user_id=order.user_id,
                            merchant_id=order.merchant_id, reason=body.reason,
                            description=body.description, media_ids=body.media_ids,
                            lines=lines, amount=amount,
                            restock=order.status in order_states.NOT_SENT)
    session.add(request)
    await session.flush()
    order_states.transition(session, order, "request_refund", actor_type=actor_type,
                            actor_id=actor_id, reason=body.reason)
    return request


async def request_refund(resources: Resources, user_id: int, order_id: int,
                         body: RefundBody) -> dict[str, Any]:
    """The buyer's refund request for lines of a paid (shipped, ready) order. The order is
    `refunding` until the request is decided and settled; one open request at a time."""
    async with resources.db.session() as session, session.begin():
        order = await orders.lock_order(session, order_id)
        if order.user_id != user_id:
            raise NotFound("No such order")
        if order.status == "paid_waiting_group":
            raise OrderStateConflict(
                "This order waits for its group: it is refunded automatically if the group "
                "does not fill", errors=[field_error("status", order.status)])
        order_states.check(order, "request_refund")
        await require_ready(session, user_id, body.media_ids, kind="image")
        request = await _open_request(session, order, body, actor_type="buyer",
                                      actor_id=user_id)
        await notifications.notify(session, order.merchant_id, "order", "refund_requested",
                                   target_type="order", target_id=order.id,
                                   payload={"title": "退款申请", "order_no": order.order_no,
                                            "text": f"订单 {order.order_no} 申请退款 "
                                                    f"¥{request.amount / 100:.2f}"})
        return view(request)


async def _lock_request(session: AsyncSession, refund_id: int) -> RefundRequest:
    found = (await session.execute(select(RefundRequest).where(RefundRequest.id == refund_id)
                                   .with_for_update()
                                   .execution_options(populate_existing=True))
             ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such refund")
    return found


def _refuse_unless(request: RefundRequest, *statuses: str) -> None:
    if request.status not in statuses:
        raise Conflict(f"This refund is {request.status}", errors=[
            field_error("status", request.status)])


async def withdraw(resources: Resources, user_id: int, refund_id: int) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        request = await _lock_request(session, refund_id)
        if request.user_id != user_id:
            raise NotFound("No such refund")
        order = await orders.lock_order(session, request.order_id)
        _refuse_unless(request, "requested")
        request.status = "withdrawn"
        order_states.transition(session, order, "refund_closed", actor_type="buyer",
                                actor_id=user_id, reason="refund withdrawn")
        return view(request)


async def decide(resources: Resources, refund_id: int, *, approve: bool, reason: str,
                 actor_id: int, actor_role: str, merchant_id: int | None) -> dict[str, Any]:
    """Approve (the money goes back through WeChat Pay) or reject a refund request. A
    merchant decides its own requests while they are `requested`; an admin (merchant_id
    None) decides any, and may approve one a merchant rejected (arbitration)."""
    async with resources.db.session() as session, session.begin():
        request = await _lock_request(session, refund_id)
        if merchant_id is not None and request.merchant_id != merchant_id:
            raise NotFound("No such refund")
        order = await orders.lock_order(session, request.order_id)
        admin = merchant_id is None
        if approve and admin and request.status == "rejected":
            order_states.transition(session, order, "request_refund", actor_type="admin",
                                    actor_id=actor_id, reason="refund reopened by an admin")
        else:
            _refuse_unless(request, "requested")
        before = {"status": request.status}
        actor_type: ActorType = "admin" if admin else "merchant"
        request.decided_by, request.decided_at = actor_id, utcnow()
        request.decision_reason = reason[:255]
        if approve:
            request.status = "refunding"
            if request.amount == 0:  # paid with points only: no money to send back
                await _refunded(session, order, request)
            else:
                await payments.refund_later(session, payable_type=orders.PAYABLE_TYPE,
                                            payable_id=order.id,
                                            out_refund_no=request.refund_no,
                                            amount=request.amount, reason=request.reason[:80],
                                            source_type=SOURCE_TYPE, source_id=request.id)
        else:
            request.status = "rejected"
            order_states.transition(session, order, "refund_closed", actor_type=actor_type,
                                    actor_id=actor_id, reason=reason)
            await _tell_buyer(session, order, request, "退款被拒绝", reason)
        audit.record(session, actor_id=actor_id, actor_role=actor_role,
                     action="refund.approve" if approve else "refund.reject",
                     target_type="refund", target_id=request.id, before=before,
                     after={"status": request.status, "reason": reason,
                            "amount": request.amount})
        return view(request)


async def _tell_buyer(session: AsyncSession, order: Order, request: RefundRequest, title: str,
                      text: str) -> None:
    await notifications.notify(session, order.user_id, "order", "refund_result",
                               target_type="order", target_id=order.id,
                               payload={"title": title, "order_no": order.order_no,
                                        "refund_no": request.refund_no, "text": text[:100]})


async def settle(session: AsyncSession, refund: PaymentRefund) -> None:
    """What a settled WeChat refund does to the order (payments' on_refund_settled). Only
    refunds of refund requests touch the order; an automatic refund of a payment that came
    after the order was cancelled has nothing to change here. Caller commits."""
    if refund.source_type != SOURCE_TYPE or refund.source_id is None:
        return
    request = await _lock_request(session, refund.source_id)
    order = await orders.lock_order(session, request.order_id)
    if request.status != "refunding":
        return  # settled before (a repeated notify, the query job)
    if refund.status != "success":
        request.status = "failed"
        order_states.transition(session, order, "refund_closed", actor_type="system",
                                actor_id=None, reason=f"refund {refund.status}")
        await _tell_buyer(session, order, request, "退款失败", "退款未成功，请联系商家")
        return
    await _refunded(session, order, request)


async def _refunded(session: AsyncSession, order: Order, request: RefundRequest) -> None:
    """The money of a `refunding` request went back (or there was none): lines refunded,
    stock back when the goods never left, the order moved on, the hooks run. Caller
    commits."""
    request.status, request.refunded_at = "refunded", utcnow()
    items = {i.id: i for i in await orders.items_of(session, order.id)}
    moves = []
    for line in request.lines:
        item = items[int(line["item_id"])]
        item.refunded_quantity += int(line["quantity"])
        item.refunded_amount += int(line["amount"])
        moves.append(stock.StockMove(item.sku_id, int(line["quantity"])))
    order.refunded_amount += request.amount
    if request.restock and moves:
        await stock.give_back(session, moves, reason="refund_restock", ref_type="refund",
                              ref_id=request.id)
        # This runs in payments' transaction: the cached pages are dropped by a task
        # that commits with it (the stock they show changed).
        outbox.enqueue_task(session, FORGET_TASK, sorted(
            {items[int(line["item_id"])].product_id for line in request.lines}))
    whole = all(i.refunded_quantity >= i.quantity for i in items.values())
    order_states.transition(session, order, "refunded" if whole else "partially_refunded",
                            actor_type="system", actor_id=None,
                            reason=f"refunded ¥{request.amount / 100:.2f}")
    await order_hooks.order_refunded.run(session, order, request, whole)
    await _tell_buyer(session, order, request, "退款成功", f"¥{request.amount / 100:.2f} 已退回")


async def force_cancel(resources: Resources, order_id: int, *, admin_id: int,
                       reason: str) -> dict[str, Any]:
    """An admin ends an order: unpaid, it is cancelled; paid (not completed), everything
    not yet refunded goes back through an approved refund request."""
    async with resources.db.session() as session:
        order = await session.get(Order, order_id)
        if order is None:
            raise NotFound("No such order")
        status = order.status
    if status == "pending_payment":
        result = await orders.cancel_order(resources, order_id, actor_type="admin",
                                           actor_id=admin_id, reason=reason)
        assert result is not None
        return result
    if status == "refunding":
        raise Conflict("A refund of this order is open: decide it instead", errors=[
            field_error("status", status)])
    async with resources.db.session() as session, session.begin():
        order = await orders.lock_order(session, order_id)
        request = await _open_request(session, order, RefundBody(reason=reason[:64]),
                                      actor_type="admin", actor_id=admin_id)
        refund_id = request.id
    decided = await decide(resources, refund_id, approve=True, reason=reason,
                           actor_id=admin_id, actor_role="admin", merchant_id=None)
    return {"id": order_id, "status": "refunding", "refund": decided}


async def refund_in_full(session: AsyncSession, order: Order, *, reason: str) -> RefundRequest:
    """The system gives back everything not yet refunded of a locked, paid order that never
    left (a group-buy whose group expired): a refund request opened and approved at once,
    the money through payments.refund_later (settled like any refund: lines refunded, stock
    back, the order `refunded`). Caller commits."""
    request = await _open_request(session, order, RefundBody(reason=reason[:64]),
                                  actor_type="system", actor_id=None)
    request.status, request.decided_at = "refunding", utcnow()
    request.decision_reason = reason[:255]
    if request.amount == 0:  # paid with points only: no money to send back
        await _refunded(session, order, request)
    else:
        await payments.refund_later(session, payable_type=orders.PAYABLE_TYPE,
                                    payable_id=order.id, out_refund_no=request.refund_no,
                                    amount=request.amount, reason=request.reason[:80],
                                    source_type=SOURCE_TYPE, source_id=request.id)
    return request


# -- reading --------------------------------------------------------------------------------------


async def list_refunds(resources: Resources, query: RefundListQuery, *,
                       user_id: int | None = None, merchant_id: int | None = None,
                       order_id: int | None = None) -> dict[str, Any]:
    conditions = []
    if user_id is not None:
        conditions.append(RefundRequest.user_id == user_id)
    if merchant_id is not None:
        conditions.append(RefundRequest.merchant_id == merchant_id)
    if order_id is not None:
        conditions.append(RefundRequest.order_id == order_id)
    if query.status:
        conditions.append(RefundRequest.status == query.status)
    paging = PageQuery(page=query.page, limit=query.limit)
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(RefundRequest)
                                           .where(*conditions))).scalar_one())
        rows = (await session.execute(select(RefundRequest).where(*conditions)
                                      .order_by(RefundRequest.id.desc())
                                      .offset(paging.offset).limit(paging.limit))).scalars()
        return page_result([view(r) for r in rows], total, paging)
