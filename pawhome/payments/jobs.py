"""The payments queue's work (workers/payments.py): closing WeChat's transaction of a payable
that will not be paid, sending refunds, and the beat jobs that find what WeChat did not tell
us — payments prepaid but never notified, refunds stuck pending or processing.

Every function takes ids, reads the current state first and is safe to run twice: WeChat's
close, refund and query calls are idempotent (by out_trade_no / out_refund_no), and results
are applied through pawhome/payments/settlement.py, once. A transient WeChat failure raises
WeChatPayUnavailable, which the task retries with backoff. docs/payments.md.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.payments import Payment, PaymentRefund
from pawhome.integrations import wechatpay
from pawhome.payments import payments, settlement
from pawhome.platform import outbox
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import WeChatPayUnavailable
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.payments")

SIMULATED_REFUND_TASK = "payments.simulate_refund_notify"
SIMULATED_REFUND_DELAY_SECONDS = 2.0  # the simulated WeChat "takes" this long to pay out
# A sweep stops starting calls after this long (each may take WECHATPAY_TIMEOUT): what it
# claimed and did not reach is due again after the query interval.
SWEEP_BUDGET_SECONDS = 60.0


def _unavailable(error: wechatpay.WeChatPayError) -> WeChatPayUnavailable:
    return WeChatPayUnavailable(f"WeChat Pay: {error}")


async def _note_error(resources: Resources, model: type[Payment] | type[PaymentRefund],
                      row_id: int, error: object) -> None:
    async with resources.db.session() as session, session.begin():
        await session.execute(update(model).where(model.id == row_id)
                              .values(last_error=str(error)[:255]))


# -- closing ---------------------------------------------------------------------------------


async def close_payment(resources: Resources, payable_type: str, payable_id: int) -> str:
    """Close the payable's payment (payments.close_later): marked closed here, then WeChat's
    transaction closed if a prepay was made. Paid meanwhile → the payment is queried and
    applied (the payable refuses it and it is refunded). Returns what happened."""
    async def mark(session: AsyncSession) -> tuple[str, int, str, bool]:
        payment = await payments.lock_payment_of(session, payable_type, payable_id)
        if payment is None:
            return "none", 0, "", False
        if payment.status in payments.PAID_STATES:
            return payment.status, payment.id, payment.out_trade_no, False
        if payment.status != "closed":
            payment.status, payment.closed_at = "closed", utcnow()
        opened = bool(payment.prepay_id) and payment.trade_state != "CLOSED"
        return "closed", payment.id, payment.out_trade_no, opened

    outcome, payment_id, out_trade_no, opened = await run_transaction(resources.db, mark)
    if not opened:
        return outcome
    try:
        await wechatpay.client_for(resources).close(out_trade_no)
    except wechatpay.WeChatPayError as error:
        if error.code == "ORDERPAID":
            return f"paid_meanwhile:{await query_payment(resources, payment_id)}"
        if error.transient:
            raise _unavailable(error) from error
        log.error("wechatpay close of %s refused: %s", out_trade_no, error)
        await _note_error(resources, Payment, payment_id, error)
        return "close_refused"
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Payment).where(Payment.id == payment_id,
                                                    Payment.status == "closed")
                              .values(trade_state="CLOSED", last_error=""))
    return "closed"


# -- missing notifies ------------------------------------------------------------------------


async def query_payment(resources: Resources, payment_id: int,
                        queried_at: dt.datetime | None = None) -> str:
    """Ask WeChat about one unpaid payment and apply what it says (SUCCESS through the same
    apply as a notify; CLOSED, PAYERROR, ... recorded). Returns the trade state or outcome."""
    async with resources.db.session() as session, session.begin():
        payment = await session.get(Payment, payment_id)
        if payment is None:
            return "none"
        if payment.status in payments.PAID_STATES:
            return payment.status
        out_trade_no = payment.out_trade_no
        payment.last_queried_at = queried_at or utcnow()
    client = wechatpay.client_for(resources)
    try:
        found = await client.query_by_out_trade_no(out_trade_no)
    except wechatpay.WeChatPayError as error:
        if error.transient:
            raise _unavailable(error) from error
        await _note_error(resources, Payment, payment_id, error)
        return "error"
    if found is None:
        await settlement.record_trade_state(resources, payment_id, "NOT_EXIST")
        return "NOT_EXIST"
    state = str(found.get("trade_state") or "")
    if state in settlement.PAID_TRADE_STATES:
        applied = await settlement.apply_transaction(
            resources, found, notification_id=f"query:{out_trade_no}",
            event_type="QUERY.SUCCESS", mchid=client.mchid, appid=client.appid)
        return applied.outcome
    await settlement.record_trade_state(resources, payment_id, state,
                                        str(found.get("trade_state_desc") or ""))
    return state


async def query_unpaid_payments(resources: Resources, now: dt.datetime | None = None) -> int:
    """Beat: payments prepaid more than PAYMENT_QUERY_AFTER_SECONDS ago and still unpaid,
    not queried within PAYMENT_QUERY_INTERVAL_SECONDS, whose time_expire is not more than
    PAYMENT_QUERY_GIVE_UP_SECONDS past: at most PAYMENT_QUERY_BATCH are queried per run
    (claimed first, so overlapping runs do not query one twice). Returns how many."""
    settings = resources.settings
    now = now or utcnow()
    again = now - dt.timedelta(seconds=settings.payment_query_interval_seconds)
    due = (Payment.status == "prepaid",
           Payment.prepaid_at <= now - dt.timedelta(seconds=settings.payment_query_after_seconds),
           or_(Payment.last_queried_at.is_(None), Payment.last_queried_at <= again),
           Payment.time_expire >= now - dt.timedelta(
               seconds=settings.payment_query_give_up_seconds))
    claimed = await _claim(resources, Payment, due, now, settings.payment_query_batch)
    queried, started = 0, time.monotonic()
    for payment_id in claimed:
        if time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            break
        try:
            await query_payment(resources, payment_id, now)
            queried += 1
        except WeChatPayUnavailable as error:  # the next run asks again
            log.warning("payment query %s: %s", payment_id, error)
    return queried


async def _claim(resources: Resources, model: type[Payment] | type[PaymentRefund],
                 due: tuple[Any, ...], now: dt.datetime, batch: int) -> list[int]:
    async with resources.db.session() as session, session.begin():
        ids = list((await session.execute(
            select(model.id).where(*due).order_by(model.last_queried_at, model.id)
            .limit(batch))).scalars())
        if not ids:
            return []
        await session.execute(update(model).where(model.id.in_(ids), *due)
                              .values(last_queried_at=now)
                              .execution_options(synchronize_session=False))
        return list((await session.execute(
            select(model.id).where(model.id.in_(ids), model.last_queried_at == now)
            .order_by(model.id))).scalars())


# -- refunds ---------------------------------------------------------------------------------


async def send_refund(resources: Resources, refund_id: int) -> str:
    """Ask WeChat for a pending refund (payments.refund_later) and apply its answer. WeChat
    knows a refund by out_refund_no, so asking twice refunds once. A permanent refusal settles
    the refund abnormal with the reason in last_error. Returns the refund's status."""
    async with resources.db.session() as session, session.begin():
        refund = await settlement.lock_refund(session, refund_id)
        if refund is None:
            return "none"
        if refund.status != "pending":
            return refund.status  # WeChat has it (processing) or it is settled
        payment = await session.get(Payment, refund.payment_id)
        assert payment is not None
        refund.attempts += 1
        out_refund_no, out_trade_no = refund.out_refund_no, payment.out_trade_no
        amount, total, reason = refund.amount, payment.paid_amount, refund.reason
    client = wechatpay.client_for(resources)
    try:
        reply = await client.refund(out_refund_no=out_refund_no, out_trade_no=out_trade_no,
                                    amount=amount, total=total, reason=reason)
    except (wechatpay.WeChatPayError, ValueError) as error:
        if isinstance(error, wechatpay.WeChatPayError) and error.transient:
            await _note_error(resources, PaymentRefund, refund_id, error)
            raise _unavailable(error) from error
        log.error("wechatpay refund %s refused: %s", out_refund_no, error)
        return await refuse_refund(resources, refund_id, str(error))
    applied = await settlement.apply_refund_result(
        resources, reply, notification_id=None, event_type="REFUND.REPLY", mchid=client.mchid)
    status = str(reply.get("status") or "")
    if client.simulator is not None and applied.accepted and status == "PROCESSING":
        # Nobody pays out a simulated refund: the simulated WeChat notifies in a moment.
        async with resources.db.session() as session, session.begin():
            outbox.enqueue_task(session, SIMULATED_REFUND_TASK, out_refund_no,
                                countdown=SIMULATED_REFUND_DELAY_SECONDS)
    return status if applied.accepted else applied.outcome


async def refuse_refund(resources: Resources, refund_id: int, error: str) -> str:
    """WeChat will not make this refund (its own refusal, or a bad amount): the refund is
    settled abnormal, its money free to refund again, the payable told."""
    async def work(session: AsyncSession) -> str:
        refund = await settlement.lock_refund(session, refund_id)
        if refund is None or refund.status != "pending":
            return refund.status if refund is not None else "none"
        payment = await session.get(Payment, refund.payment_id)
        assert payment is not None
        await settlement.settle_refund(session, refund, payment, "abnormal", error=error)
        return "abnormal"

    return await run_transaction(resources.db, work)


async def query_stuck_refunds(resources: Resources, now: dt.datetime | None = None) -> int:
    """Beat: refunds pending or processing for more than PAYMENT_REFUND_QUERY_AFTER_SECONDS
    (and not looked at within it): a pending one is sent again (its task was lost or gave
    up), a processing one is queried and its result applied. PAYMENT_REFUND_QUERY_BATCH per
    run. Returns how many were looked at."""
    settings = resources.settings
    now = now or utcnow()
    after = now - dt.timedelta(seconds=settings.payment_refund_query_after_seconds)
    due = (PaymentRefund.status.in_(("pending", "processing")),
           PaymentRefund.created_at <= after,
           or_(PaymentRefund.last_queried_at.is_(None), PaymentRefund.last_queried_at <= after))
    claimed = await _claim(resources, PaymentRefund, due, now,
                           settings.payment_refund_query_batch)
    looked, started = 0, time.monotonic()
    for refund_id in claimed:
        if time.monotonic() - started > SWEEP_BUDGET_SECONDS:
            break
        try:
            await _look_at_refund(resources, refund_id)
            looked += 1
        except WeChatPayUnavailable as error:
            log.warning("refund query %s: %s", refund_id, error)
    return looked


async def _look_at_refund(resources: Resources, refund_id: int) -> str:
    async with resources.db.session() as session:
        refund = await session.get(PaymentRefund, refund_id)
        if refund is None:
            return "none"
        status, out_refund_no = refund.status, refund.out_refund_no
    if status == "pending":
        return await send_refund(resources, refund_id)
    if status != "processing":
        return status
    client = wechatpay.client_for(resources)
    try:
        found = await client.query_refund(out_refund_no)
    except wechatpay.WeChatPayError as error:
        if error.transient:
            raise _unavailable(error) from error
        await _note_error(resources, PaymentRefund, refund_id, error)
        return "error"
    if found is None:
        # WeChat never took it (our reply was lost in transit): send it again.
        async with resources.db.session() as session, session.begin():
            await session.execute(update(PaymentRefund).where(
                PaymentRefund.id == refund_id, PaymentRefund.status == "processing")
                .values(status="pending"))
        return await send_refund(resources, refund_id)
    found_status = str(found.get("status") or "")
    final = settlement.REFUND_STATES.get(found_status) in settlement.FINAL_REFUND_STATES
    applied = await settlement.apply_refund_result(
        resources, found, notification_id=f"query:{out_refund_no}:{found_status}"
        if final else None, event_type="QUERY.REFUND", mchid=client.mchid)
    return applied.outcome
