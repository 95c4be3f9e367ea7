"""Booking deposits, the appointment's side: what an appointment shows of its deposit, the
full refund when it is cancelled, and what a settled refund records. Paying a deposit (the
payable "appt_deposit") is deposit_payments.py, which sits above appointments.py; this module
sits below it, so a cancellation can refund in its own transaction. docs/booking.md
("Deposits").
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.booking import Appointment
from models.payments import PaymentRefund
from pawhome.messaging import notifications
from pawhome.payments import payments

PAYABLE_TYPE = "appt_deposit"  # payable_id: the hold the deposit was paid on
REFUND_SOURCE = "appointment"  # a cancellation's refund: source_id is the appointment
REFUND_REASON = "预约已取消，定金退回"


def trade_no(hold_id: int) -> str:
    """The deposit's out_trade_no: one per hold, never another payable's (orders have
    their own numbering)."""
    return f"BK{hold_id:012d}"


def refund_no(appointment_id: int) -> str:
    """The out_refund_no of an appointment's deposit refund: one per appointment, so a rerun
    never refunds twice."""
    return f"BKR{appointment_id:012d}"


def deposit_view(appointment: Appointment) -> dict[str, Any]:
    """The deposit fields of an appointment's view: paid online, its state (none, paid,
    refunding, refunded, refund_failed), refunded and what is left to pay at the store."""
    return {"deposit": appointment.deposit, "deposit_status": appointment.deposit_status,
            "deposit_refunded": appointment.deposit_refunded,
            "due_at_store": appointment.price - appointment.deposit}


async def refund_deposit(session: AsyncSession, appointment: Appointment) -> None:
    """A cancelled appointment (by its user before the deadline, or by the provider) gets
    its whole deposit back: the refund row and the task that sends it commit with the
    cancellation (payments.refund_later, which locks the payment after the caller's
    appointment and hold: the same order as every other path). Caller commits."""
    if appointment.deposit <= 0 or appointment.deposit_status != "paid" \
            or appointment.deposit_hold_id is None:
        return
    await payments.refund_later(
        session, payable_type=PAYABLE_TYPE, payable_id=appointment.deposit_hold_id,
        out_refund_no=refund_no(appointment.id), amount=appointment.deposit,
        reason=REFUND_REASON, source_type=REFUND_SOURCE, source_id=appointment.id)
    appointment.deposit_status = "refunding"


async def record_refund(session: AsyncSession, refund: PaymentRefund) -> None:
    """A deposit refund settled (payments' on_refund_settled): the appointment records it.
    An automatic refund of a deposit paid for a hold that was gone (source "payment") has no
    appointment and nothing to record. An abnormal refund may later end in success: called
    again then. Caller commits."""
    if refund.source_type != REFUND_SOURCE or refund.source_id is None:
        return
    appointment = (await session.execute(select(Appointment).where(
        Appointment.id == refund.source_id).with_for_update())).scalar_one_or_none()
    if appointment is None:
        return
    if refund.status == "success":
        told = appointment.deposit_status != "refunded"
        appointment.deposit_status, appointment.deposit_refunded = "refunded", refund.amount
        if told:  # the user hears once, when the money is on its way back
            await notifications.notify(
                session, appointment.user_id, "appointment", "deposit_refunded",
                target_type="appointment", target_id=appointment.id,
                payload={"title": "定金已退回",
                         "text": f"预约定金 ¥{refund.amount / 100:.2f} 已原路退回",
                         "appointment_id": appointment.id, "amount": refund.amount})
    elif appointment.deposit_status != "refunded":
        appointment.deposit_status = "refund_failed"
