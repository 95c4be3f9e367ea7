"""Cash registrations as payments' payable "activity_reg" (payable_id: the registration),
registered with the payments registry when this module is imported (pawhome.domains does).

A verified payment confirms a pending registration in payments' transaction; one that comes
after the seat was freed (the deadline passed, the user or the organiser cancelled) is refused
and payments refunds it in full. A settled refund of a cancellation is recorded on the
registration, and its user is told once.
"""
from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity
from models.payments import Payment, PaymentRefund
from pawhome.activities import seats, states
from pawhome.payments import payables

log = logging.getLogger("pawhome.activities")


async def _confirm_paid(session: AsyncSession, payment: Payment) -> bool:
    """payments' on_paid: the pending registration is confirmed (its seat was held for it).
    False (refund in full) when it is no longer waiting for this money."""
    registration = await seats.lock_registration(session, payment.payable_id)
    if registration is None or registration.status != "pending_payment" \
            or payment.paid_amount != registration.amount:
        log.warning("activity registration %s paid while %s: refunding", payment.payable_id,
                    registration.status if registration is not None else "missing")
        return False
    states.apply_registration(session, registration, "pay", "confirmed", actor_type="user",
                              actor_id=registration.user_id)
    registration.payment_status = "paid"
    return True


async def _record_refund(session: AsyncSession, refund: PaymentRefund) -> None:
    """payments' on_refund_settled for a cancellation's refund (an automatic refund of a
    late payment has no registration to record). Called again if an abnormal one ends in
    success later."""
    if refund.source_type != seats.REFUND_SOURCE or refund.source_id is None:
        return
    registration = await seats.lock_registration(session, refund.source_id)
    if registration is None:
        return
    if refund.status == "success":
        told = registration.payment_status != "refunded"
        registration.payment_status = "refunded"
        activity = await session.get(Activity, registration.activity_id)
        if told and activity is not None:
            await seats.tell(session, registration, activity, "refunded", "报名费用已退回",
                             f"「{activity.title}」报名费 ¥{refund.amount / 100:.2f} 已原路退回")
    elif registration.payment_status != "refunded":
        registration.payment_status = "refund_failed"


payables.register_payable(seats.PAYABLE_TYPE, on_paid=_confirm_paid,
                          on_refund_settled=_record_refund)
