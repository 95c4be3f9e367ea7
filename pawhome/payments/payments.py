"""Payments of payables: the one Payment row per payable (WeChat's out_trade_no), the prepay
that opens it for wx.requestPayment, and the bookkeeping other domains call in their own
transactions: closing (close_later) and refunding (refund_later).

The WeChat Pay call of a prepay is never made inside a database transaction (it is a network
call): the row is found or made, the call made, then the prepay_id stored in a second short
transaction that checks nothing changed meanwhile. docs/payments.md ("Prepay and reuse").
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.payments import Payment, PaymentNotification, PaymentRefund
from models.users import User
from pawhome.integrations import wechatpay
from pawhome.payments import payables
from pawhome.platform import outbox
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    Conflict,
    PaymentAlreadyPaid,
    PaymentClosed,
    RefundNotAllowed,
    ValidationFailed,
    WeChatPayUnavailable,
    field_error,
)
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.payments")

# WeChat's rules: out_trade_no 6-32 of [A-Za-z0-9_-|*]; out_refund_no up to 64 of
# [A-Za-z0-9_-|*@] (our column keeps 32).
OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,32}$")
DESCRIPTION_CHARS = 127
REFUND_REASON_CHARS = 80
PAID_STATES = ("paid", "refunded")
CLOSE_TASK = "payments.close_payment"
REFUND_TASK = "payments.send_refund"


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Naive UTC, as the columns store it (aware times are converted)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


# -- reading and locking --------------------------------------------------------------------


async def payment_of(session: AsyncSession, payable_type: str,
                     payable_id: int) -> Payment | None:
    """The payment of a payable, if one was ever opened (no lock)."""
    return (await session.execute(select(Payment).where(
        Payment.payable_type == payable_type, Payment.payable_id == payable_id))
    ).scalar_one_or_none()


async def lock_payment_of(session: AsyncSession, payable_type: str,
                          payable_id: int) -> Payment | None:
    """The payment of a payable, locked (SELECT ... FOR UPDATE) and read fresh."""
    return (await session.execute(
        select(Payment).where(Payment.payable_type == payable_type,
                              Payment.payable_id == payable_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


async def lock_payment_by_no(session: AsyncSession, out_trade_no: str) -> Payment | None:
    """The payment of an out_trade_no, locked and read fresh."""
    return (await session.execute(
        select(Payment).where(Payment.out_trade_no == out_trade_no)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


async def lock_payment(session: AsyncSession, payment_id: int) -> Payment:
    return (await session.execute(
        select(Payment).where(Payment.id == payment_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one()


# -- prepay ----------------------------------------------------------------------------------


def _check_prepare_arguments(payable_type: str, out_trade_no: str, amount: int,
                             description: str) -> None:
    payables.payable(payable_type)  # LookupError: a programming error, not the caller's
    if not OUT_TRADE_NO.match(out_trade_no):
        raise ValueError(f"out_trade_no must be 6-32 of [A-Za-z0-9_-|*]: {out_trade_no!r}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValueError("amount must be a positive number of fen")
    if not description.strip():
        raise ValueError("a payment needs a description (WeChat shows it to the payer)")


async def _open_payment(session: AsyncSession, *, payable_type: str, payable_id: int,
                        user_id: int, out_trade_no: str, amount: int, description: str,
                        time_expire: dt.datetime, channel: str) -> tuple[Payment, str]:
    """Find or make the payable's payment (locked); refuse one that cannot be paid now.
    Returns it with the payer's openid."""
    user = await session.get(User, user_id)
    openid = user.openid if user is not None else None
    if not openid:
        raise ValidationFailed("This account has no WeChat login to pay with", errors=[
            field_error("openid", "log in with WeChat (wx.login) before paying")])
    payment = await lock_payment_of(session, payable_type, payable_id)
    if payment is None:
        taken = (await session.execute(select(Payment.id).where(
            Payment.out_trade_no == out_trade_no))).scalar_one_or_none()
        if taken is not None:  # another payable's number: a clear refusal, not a key clash
            raise Conflict("This payment number belongs to another payment", errors=[
                field_error("out_trade_no", "already used by another payment")])
        payment = Payment(out_trade_no=out_trade_no, payable_type=payable_type,
                          payable_id=payable_id, user_id=user_id, channel=channel,
                          amount=amount, description=description[:DESCRIPTION_CHARS],
                          status="created", time_expire=time_expire)
        session.add(payment)
        await session.flush()  # a concurrent first call: the unique keys make one rerun
        return payment, openid
    if payment.user_id != user_id or payment.out_trade_no != out_trade_no \
            or payment.amount != amount:
        # The payable changed under its payment (or two payables share a number): WeChat
        # would refuse the same out_trade_no with other parameters anyway.
        raise Conflict("This payment was opened with other details", errors=[
            field_error("amount", "differs from the payment opened for this")])
    _refuse_unpayable(payment)
    return payment, openid


def _refuse_unpayable(payment: Payment) -> None:
    if payment.status in PAID_STATES:
        raise PaymentAlreadyPaid(data={"out_trade_no": payment.out_trade_no})
    if payment.status == "closed":
        raise PaymentClosed(data={"out_trade_no": payment.out_trade_no})
    if payment.time_expire <= utcnow():
        raise PaymentClosed("The time to pay is over",
                            data={"out_trade_no": payment.out_trade_no})


def _live_prepay(resources: Resources, payment: Payment) -> str | None:
    """The stored prepay_id if it is worth handing out again: it lives past the reuse margin,
    or it lives as long as the payment may be paid anyway (a new one would not live longer).
    """
    expires, now = payment.prepay_expires_at, utcnow()
    if not payment.prepay_id or expires is None or expires <= now:
        return None
    margin = dt.timedelta(seconds=resources.settings.payment_prepay_reuse_margin_seconds)
    if expires - margin > now or expires >= payment.time_expire:
        return payment.prepay_id
    return None


async def prepare_payment(resources: Resources, *, payable_type: str, payable_id: int,
                          user_id: int, out_trade_no: str, amount: int, description: str,
                          time_expire: dt.datetime) -> dict[str, Any]:
    """wx.requestPayment's parameters {timeStamp, nonceStr, package, signType, paySign} (and
    appId) plus out_trade_no, for paying `amount` fen for a payable by `time_expire`.

    The first call makes the payable's Payment row (unique per payable) and asks WeChat for a
    JSAPI prepay; later calls reuse the row (its out_trade_no, amount, description and
    time_expire are fixed by the first) and its prepay_id while it lives (2 h, never past
    time_expire). Refused: a user without an openid (422, field openid), paid (409
    PaymentAlreadyPaid), closed or past time_expire (409 PaymentClosed); WeChat unreachable →
    503 WeChatPayUnavailable (calling again is safe). The caller checks the payable may be
    paid by this user."""
    _check_prepare_arguments(payable_type, out_trade_no, amount, description)
    settings = resources.settings
    deadline = as_utc(time_expire)
    if deadline <= utcnow():
        raise PaymentClosed("The time to pay is over", data={"out_trade_no": out_trade_no})

    async def open_it(session: AsyncSession) -> tuple[dict[str, Any], str, str | None]:
        payment, openid = await _open_payment(
            session, payable_type=payable_type, payable_id=payable_id, user_id=user_id,
            out_trade_no=out_trade_no, amount=amount, description=description,
            time_expire=deadline, channel=settings.payment_provider)
        fixed = {"id": payment.id, "out_trade_no": payment.out_trade_no,
                 "amount": payment.amount, "description": payment.description,
                 "time_expire": payment.time_expire}
        return fixed, openid, _live_prepay(resources, payment)

    fixed, openid, prepay_id = await run_transaction(resources.db, open_it)
    client = wechatpay.client_for(resources)
    if prepay_id is None:
        prepay_id = await _ask_for_prepay(resources, client, fixed, openid)
    try:
        params = client.request_payment_params(prepay_id)
    except wechatpay.WeChatPayError as error:  # not configured: no key to sign with
        raise WeChatPayUnavailable(f"WeChat Pay cannot sign: {error.message}") from error
    return {**params, "out_trade_no": fixed["out_trade_no"]}


async def _ask_for_prepay(resources: Resources, client: wechatpay.WeChatPayClient,
                          fixed: dict[str, Any], openid: str) -> str:
    """Call WeChat's JSAPI prepay (no transaction open) and store the prepay_id."""
    asked_at = utcnow()
    try:
        prepay_id = await client.jsapi_prepay(
            out_trade_no=fixed["out_trade_no"], description=fixed["description"],
            amount=fixed["amount"], payer_openid=openid, time_expire=fixed["time_expire"])
    except wechatpay.WeChatPayError as error:
        if error.code == "ORDERPAID":
            # Paid, and we have not heard yet: look now (the query job would, later).
            await _enqueue(resources, "payments.query_payment", fixed["id"])
            raise PaymentAlreadyPaid(data={"out_trade_no": fixed["out_trade_no"]}) from error
        if error.code in ("ORDERCLOSED", "ORDER_CLOSED"):
            raise PaymentClosed(data={"out_trade_no": fixed["out_trade_no"]}) from error
        log.warning("wechatpay prepay of %s failed: %s", fixed["out_trade_no"], error)
        raise WeChatPayUnavailable(
            "WeChat Pay did not open the payment; try again shortly" if error.transient
            else f"WeChat Pay refused the payment ({error.code or error.status})") from error
    lifetime = dt.timedelta(seconds=resources.settings.payment_prepay_lifetime_seconds)

    async def store(session: AsyncSession) -> Payment:
        payment = await lock_payment(session, fixed["id"])
        if payment.status == "closed":
            # Closed while we asked: WeChat's side may have opened after the close task
            # ran, so close it again (committed before the refusal below).
            enqueue_close(session, payment)
        elif payment.status not in PAID_STATES:
            if payment.status == "created":
                payment.status = "prepaid"
            payment.prepay_id = prepay_id
            payment.prepaid_at = payment.prepaid_at or asked_at
            payment.prepay_expires_at = min(asked_at + lifetime, payment.time_expire)
        return payment

    _refuse_unpayable(await run_transaction(resources.db, store))
    return prepay_id


async def _enqueue(resources: Resources, task_name: str, *args: Any) -> None:
    async with resources.db.session() as session, session.begin():
        outbox.enqueue_task(session, task_name, *args)


# -- closing ---------------------------------------------------------------------------------


def close_later(session: AsyncSession, *, payable_type: str, payable_id: int) -> None:
    """The payable will not be paid (cancelled): its payment, if one was opened and is not
    paid, is marked closed and WeChat's transaction closed, by a task that commits with the
    caller (payments.close_payment). A payment that arrives anyway is refunded. Caller
    commits."""
    outbox.enqueue_task(session, CLOSE_TASK, payable_type, payable_id)


def enqueue_close(session: AsyncSession, payment: Payment) -> None:
    outbox.enqueue_task(session, CLOSE_TASK, payment.payable_type, payment.payable_id)


# -- refunds ---------------------------------------------------------------------------------


async def refund_later(session: AsyncSession, *, payable_type: str, payable_id: int,
                       out_refund_no: str, amount: int, reason: str, source_type: str,
                       source_id: int | None) -> PaymentRefund:
    """Refund `amount` fen of the payable's payment: the refund row (pending) and the task
    that asks WeChat (payments.send_refund) commit with the caller. Refused: nothing paid, or
    more than paid minus what open and done refunds hold (409 RefundNotAllowed); amount < 1
    (422). The same out_refund_no again returns the first refund (its amount must match).
    Locks the payment row until the caller commits. Caller commits."""
    if not OUT_REFUND_NO.match(out_refund_no):
        raise ValueError(f"out_refund_no must be 1-32 of [A-Za-z0-9_-|*@]: {out_refund_no!r}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValidationFailed("A refund is at least 1 fen", errors=[
            field_error("amount", "must be a positive number of fen")])
    payment = await lock_payment_of(session, payable_type, payable_id)
    if payment is None:
        raise RefundNotAllowed("Nothing was paid for this", errors=[
            field_error("amount", "nothing was paid")])
    # The payment is locked: refunds of it are made one at a time from here on.
    existing = (await session.execute(select(PaymentRefund).where(
        PaymentRefund.out_refund_no == out_refund_no))).scalar_one_or_none()
    if existing is not None:
        return _same_refund(existing, payment, amount)
    if payment.status not in PAID_STATES:
        raise RefundNotAllowed("Nothing was paid for this", errors=[
            field_error("amount", "nothing was paid")])
    refundable = payment.paid_amount - payment.refund_reserved
    if amount > refundable:
        raise RefundNotAllowed(f"At most {refundable} fen can still be refunded", errors=[
            field_error("amount", f"at most {refundable} fen")],
            data={"refundable": refundable})
    refund = PaymentRefund(out_refund_no=out_refund_no, payment_id=payment.id, amount=amount,
                           reason=reason[:REFUND_REASON_CHARS], status="pending",
                           source_type=source_type[:24], source_id=source_id)
    try:
        async with session.begin_nested():
            session.add(refund)
            await session.flush()
    except IntegrityError:
        # The same number made by a transaction that committed after our snapshot began: a
        # locking read sees it.
        existing = (await session.execute(
            select(PaymentRefund).where(PaymentRefund.out_refund_no == out_refund_no)
            .with_for_update())).scalar_one_or_none()
        if existing is None:
            raise
        return _same_refund(existing, payment, amount)
    payment.refund_reserved += amount
    outbox.enqueue_task(session, REFUND_TASK, refund.id)
    return refund


def _same_refund(existing: PaymentRefund, payment: Payment, amount: int) -> PaymentRefund:
    if existing.payment_id != payment.id or existing.amount != amount:
        raise Conflict("This refund number was used for another refund", errors=[
            field_error("out_refund_no", "used for another refund")])
    return existing


def holds_money(refund: PaymentRefund) -> bool:
    """Whether a refund keeps its amount out of what can still be refunded: WeChat has it,
    is paying it out or paid it out. One WeChat refused outright (abnormal without a
    refund_id) or closed gives it back."""
    if refund.status in ("pending", "processing", "success"):
        return True
    return refund.status == "abnormal" and bool(refund.refund_id)


# -- views -----------------------------------------------------------------------------------


def payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id, "out_trade_no": payment.out_trade_no,
        "payable_type": payment.payable_type, "payable_id": payment.payable_id,
        "user_id": payment.user_id, "channel": payment.channel, "amount": payment.amount,
        "description": payment.description, "status": payment.status,
        "trade_state": payment.trade_state, "transaction_id": payment.transaction_id,
        "paid_amount": payment.paid_amount, "refund_reserved": payment.refund_reserved,
        "refunded_amount": payment.refunded_amount, "paid_at": payment.paid_at,
        "closed_at": payment.closed_at, "time_expire": payment.time_expire,
        "prepaid_at": payment.prepaid_at, "prepay_expires_at": payment.prepay_expires_at,
        "last_queried_at": payment.last_queried_at, "last_error": payment.last_error,
        "created_at": payment.created_at, "updated_at": payment.updated_at,
    }


def refund_view(refund: PaymentRefund) -> dict[str, Any]:
    return {
        "id": refund.id, "out_refund_no": refund.out_refund_no,
        "payment_id": refund.payment_id, "refund_id": refund.refund_id,
        "amount": refund.amount, "reason": refund.reason, "status": refund.status,
        "source_type": refund.source_type, "source_id": refund.source_id,
        "attempts": refund.attempts, "last_error": refund.last_error,
        "succeeded_at": refund.succeeded_at, "created_at": refund.created_at,
        "updated_at": refund.updated_at,
    }


def notification_view(row: PaymentNotification) -> dict[str, Any]:
    return {
        "id": row.id, "notification_id": row.notification_id, "event_type": row.event_type,
        "out_trade_no": row.out_trade_no, "out_refund_no": row.out_refund_no,
        "transaction_id": row.transaction_id, "state": row.state, "amount": row.amount,
        "outcome": row.outcome, "detail": row.detail, "received_at": row.received_at,
    }


NOTIFICATIONS_SHOWN = 20


async def find_payments(resources: Resources, query: PageQuery, *,
                        out_trade_no: str | None = None,
                        status: str | None = None) -> dict[str, Any]:
    """Admins look payments up (newest first), each with its refunds and latest
    notifications."""
    conditions = []
    if out_trade_no:
        conditions.append(Payment.out_trade_no == out_trade_no)
    if status:
        conditions.append(Payment.status == status)
    async with resources.db.session() as session:
        total = int((await session.execute(
            select(func.count()).select_from(Payment).where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(Payment).where(*conditions).order_by(Payment.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        items = []
        for payment in rows:
            refunds = (await session.execute(
                select(PaymentRefund).where(PaymentRefund.payment_id == payment.id)
                .order_by(PaymentRefund.id))).scalars()
            notes = (await session.execute(
                select(PaymentNotification)
                .where(PaymentNotification.out_trade_no == payment.out_trade_no)
                .order_by(PaymentNotification.id.desc()).limit(NOTIFICATIONS_SHOWN))).scalars()
            items.append({**payment_view(payment),
                          "refunds": [refund_view(r) for r in refunds],
                          "notifications": [notification_view(n) for n in notes]})
    return page_result(items, total, query)


async def find_notifications(resources: Resources, query: PageQuery, *,
                             outcome: str | None = None) -> dict[str, Any]:
    """Notifies and query results as recorded (newest first); outcome "mismatch" is what an
    admin must look at."""
    conditions = [PaymentNotification.outcome == outcome] if outcome else []
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count()).select_from(
            PaymentNotification).where(*conditions))).scalar_one())
        rows = (await session.execute(
            select(PaymentNotification).where(*conditions)
            .order_by(PaymentNotification.id.desc())
            .offset(query.offset).limit(query.limit))).scalars()
        return page_result([notification_view(r) for r in rows], total, query)
