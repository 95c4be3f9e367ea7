"""Orders as payables: paying an order through pawhome.payments (which knows no orders) and
what a confirmed payment or a settled refund does to it. Registered with the payments
registry when this module is imported (pawhome.domains imports it).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order
from models.payments import Payment, PaymentRefund
from pawhome.mall import order_states, orders, refunds
from pawhome.payments import payables, payments
from pawhome.platform.errors import NotFound, OrderStateConflict, field_error
from pawhome.platform.resources import Resources

DESCRIPTION_CHARS = 127  # WeChat Pay's limit on `description`


async def pay_order(resources: Resources, user_id: int, order_id: int) -> dict[str, Any]:
    """The wx.requestPayment parameters for one of the caller's unpaid orders (a repeated
    call reuses the live prepay). Past its deadline the order is no longer payable."""
    async with resources.db.session() as session:
        order = await session.get(Order, order_id)
        if order is None or order.user_id != user_id:
            raise NotFound("No such order")
        order_states.check(order, "pay")
        if order.pay_deadline <= utcnow():
            raise OrderStateConflict("The time to pay this order is over", errors=[
                field_error("order_id", "past its payment deadline")])
        order_no, amount, deadline = order.order_no, order.payable_amount, order.pay_deadline
    return await payments.prepare_payment(
        resources, payable_type=orders.PAYABLE_TYPE, payable_id=order_id, user_id=user_id,
        out_trade_no=order_no, amount=amount,
        description=f"PAWHome 订单 {order_no}"[:DESCRIPTION_CHARS], time_expire=deadline)


async def _apply_payment(session: AsyncSession, payment: Payment) -> bool:
    return await orders.mark_paid(session, payment.payable_id, payment.paid_amount)


async def _apply_refund(session: AsyncSession, refund: PaymentRefund) -> None:
    await refunds.settle(session, refund)


payables.register_payable(orders.PAYABLE_TYPE, on_paid=_apply_payment,
                          on_refund_settled=_apply_refund)
