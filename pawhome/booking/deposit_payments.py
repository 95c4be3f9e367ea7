"""Booking deposits as payables: paying a hold's deposit through pawhome.payments (which knows
no booking), and the payment that books the hold. Registered with the payments registry when
this module is imported (pawhome.domains imports it). docs/booking.md ("Deposits").

The payable is the hold (payable "appt_deposit", payable_id = the hold id), paid by the
hold's expiry (WeChat's time_expire). The verified payment books the hold in payments'
transaction, through the one confirm path (appointments.book_hold); a hold gone by then
(expired and released, its time taken) refuses it and payments refunds it in full.
"""
from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Service
from models.payments import Payment
from pawhome.booking import appointments, deposits
from pawhome.payments import payables, payments
from pawhome.platform.errors import DepositNotDue, DepositPaid, HoldExpired, NotFound, field_error
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.booking")

DESCRIPTION_CHARS = 127  # WeChat Pay's limit on `description`


class PayDepositBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    remark: str = Field("", max_length=255, description="the appointment's remark")


PAY_REFUSALS = {"hold_id": "a live hold of the caller whose service takes a deposit"}


async def pay_deposit(resources: Resources, user_id: int, hold_id: int,
                      body: PayDepositBody) -> dict[str, Any]:
    """wx.requestPayment's parameters for the deposit of the caller's live hold, payable until
    the hold expires (a repeated call reuses the live prepay). Someone else's hold → 404;
    booked already → 409 DepositPaid; expired or released → 409 HoldExpired; a service
    without a deposit → 422 DepositNotDue. The remark is the appointment's once paid."""
    async with resources.db.session() as session, session.begin():
        hold = await appointments.lock_hold(session, hold_id)
        if hold is None or hold.user_id != user_id:
            raise NotFound("No such hold")
        if hold.status == "confirmed":
            raise DepositPaid(errors=[field_error("hold_id", "booked already")])
        if hold.deposit <= 0:
            raise DepositNotDue(errors=[field_error("hold_id", "this service takes no deposit")])
        if hold.status != "held" or hold.expires_at <= utcnow():
            raise HoldExpired(errors=[field_error("hold_id", hold.status)])
        hold.remark = body.remark
        service = await session.get(Service, hold.service_id)
        name = service.name if service is not None else ""
        amount, deadline = hold.deposit, hold.expires_at
    return await payments.prepare_payment(
        resources, payable_type=deposits.PAYABLE_TYPE, payable_id=hold_id, user_id=user_id,
        out_trade_no=deposits.trade_no(hold_id), amount=amount,
        description=f"PAWHome 预约定金 {name}"[:DESCRIPTION_CHARS], time_expire=deadline)


async def _book_paid_hold(session: AsyncSession, payment: Payment) -> bool:
    """payments' on_paid: book the hold the deposit was paid on, in payments' transaction
    (which holds the payment's lock; the hold is locked next, as every other path that takes
    both does). True when booked; False when the hold is gone (payments refunds in full)."""
    hold = await appointments.lock_hold(session, payment.payable_id)
    if hold is None or hold.status != "held" or payment.paid_amount != hold.deposit:
        log.warning("deposit %s paid for hold %s, which is %s: refunding",
                    payment.out_trade_no, payment.payable_id,
                    hold.status if hold is not None else "missing")
        return False
    try:
        async with session.begin_nested():  # a refusal leaves the hold's units as they were
            await appointments.book_hold(session, hold, remark=hold.remark, now=utcnow(),
                                         deposit=payment.paid_amount)
    except HoldExpired:
        log.warning("deposit %s paid for hold %s whose time is gone: refunding",
                    payment.out_trade_no, hold.id)
        return False
    return True


payables.register_payable(deposits.PAYABLE_TYPE, on_paid=_book_paid_hold,
                          on_refund_settled=deposits.record_refund)
