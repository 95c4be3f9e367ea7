"""Applying what WeChat Pay says happened, exactly once: a paid transaction (from a notify or
from our own query, through the same `apply_transaction`) and a refund's result (from a
notify, the refund call's reply or a query, through `apply_refund_result`).

Each runs in one transaction that locks the row it changes (the payment; the refund), checks
the result against our records (mchid, appid, out_trade_no, amounts), records it once per
notification id (payment_notifications, unique) and then calls the payable's registered
function. Lock order, everywhere in payments: a refund row, then the payable's rows (its
on_refund_settled), then the payment row; a payment's first "paid" locks the payment, then
the payable's rows. docs/payments.md ("Notify handling").
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.payments import Payment, PaymentNotification, PaymentRefund
from pawhome.payments import alerts, payables, payments
from pawhome.platform.db import run_transaction
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.payments")

NOTIFY_OUTCOMES = Counter("pawhome_payment_results_total",
                          "WeChat Pay results (notifies, replies, queries) by kind and outcome",
                          ["kind", "outcome"])

REFUND_STATES = {"SUCCESS": "success", "CLOSED": "closed", "ABNORMAL": "abnormal",
                 "PROCESSING": "processing"}
FINAL_REFUND_STATES = ("success", "closed", "abnormal")
PAID_TRADE_STATES = ("SUCCESS", "REFUND")  # REFUND: paid, then (partly) refunded
AUTO_REFUND_REASON = "订单已取消，款项原路退回"


@dataclass(frozen=True)
class Applied:
    """What became of a result. `outcome`: applied | duplicate | refund_after_cancel |
    mismatch | ignored; `seen`: this notification id was recorded before (a retry)."""
    outcome: str
    detail: str = ""
    unknown: bool = False  # mismatch because we have no such out_trade_no / out_refund_no
    seen: bool = False

    @property
    def accepted(self) -> bool:
        return self.outcome != "mismatch"


def wechat_time(text: Any) -> dt.datetime | None:
    """WeChat's RFC 3339 time ("2026-12-05T12:00:00+08:00") as naive UTC; None if absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return payments.as_utc(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _fen(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _seen(session: AsyncSession, notification_id: str) -> PaymentNotification | None:
    return (await session.execute(select(PaymentNotification).where(
        PaymentNotification.notification_id == notification_id))).scalar_one_or_none()


async def _record(session: AsyncSession, notification_id: str, event_type: str, *,
                  outcome: str, detail: str = "", out_trade_no: str = "",
                  out_refund_no: str = "", transaction_id: str = "", state: str = "",
                  amount: int = 0) -> bool:
    """Keep a result once per notification id (INSERT IGNORE / ON CONFLICT DO NOTHING: a
    concurrent copy of the same notify waits for the first and inserts nothing). True if this
    call recorded it."""
    values = {"notification_id": notification_id[:64], "event_type": event_type[:32],
              "out_trade_no": out_trade_no[:32], "out_refund_no": out_refund_no[:32],
              "transaction_id": transaction_id[:64], "state": state[:32], "amount": amount,
              "outcome": outcome, "detail": detail[:255], "received_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        statement: Any = sqlite.insert(PaymentNotification).values(**values) \
            .on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        statement = mysql.insert(PaymentNotification).values(**values).prefix_with("IGNORE")
    else:
        statement = insert(PaymentNotification).values(**values)
    result: Any = await session.execute(statement)
    return bool(result.rowcount)


async def _mismatch(session: AsyncSession, notification_id: str, event_type: str,
                    detail: str, *, unknown: bool = False, **fields: Any) -> Applied:
    """Record a result that contradicts our records, and tell the admins the first time.
    Nothing else changes: the payment is never marked paid on a mismatch."""
    first = await _record(session, notification_id, event_type, outcome="mismatch",
                          detail=detail, **fields)
    if first:
        log.error("wechatpay %s %s does not match our records: %s", event_type,
                  notification_id, detail)
        subject = fields.get("out_refund_no") or fields.get("out_trade_no") or "?"
        await alerts.tell_admins(session, "payment_mismatch", "支付结果与记录不符",
                                 f"{event_type} {subject}: {detail}",
                                 extra={"notification_id": notification_id[:64]})
    return Applied("mismatch", detail, unknown=unknown)


# -- payments ---------------------------------------------------------------------------------


async def apply_transaction(resources: Resources, transaction: dict[str, Any], *,
                            notification_id: str, event_type: str, mchid: str,
                            appid: str) -> Applied:
    """Apply WeChat's transaction (a notify's decrypted resource, or a query's reply):
    "paid" exactly once, under the payment's row lock, then the payable's on_paid. A payable
    that no longer takes it (on_paid False) gets a full automatic refund in the same
    transaction (outcome refund_after_cancel). A transaction that is not SUCCESS changes only
    the recorded trade_state (ignored)."""
    out_trade_no = str(transaction.get("out_trade_no") or "")
    transaction_id = str(transaction.get("transaction_id") or "")
    state = str(transaction.get("trade_state") or "")
    amount = transaction.get("amount") if isinstance(transaction.get("amount"), dict) else {}
    total = _fen((amount or {}).get("total"))
    fields: dict[str, Any] = {"out_trade_no": out_trade_no, "transaction_id": transaction_id,
                              "state": state, "amount": total or 0}

    async def work(session: AsyncSession) -> Applied:
        payment = await payments.lock_payment_by_no(session, out_trade_no) \
            if out_trade_no else None
        # After the lock: a copy of this notify that got the lock first has committed.
        seen = await _seen(session, notification_id)
        if seen is not None:
            return Applied(seen.outcome, seen.detail, seen=True,
                           unknown=seen.outcome == "mismatch" and payment is None)
        if transaction.get("mchid") != mchid:
            return await _mismatch(session, notification_id, event_type,
                                   f"mchid {str(transaction.get('mchid'))[:32]} is not ours",
                                   **fields)
        if transaction.get("appid") != appid:
            return await _mismatch(session, notification_id, event_type,
                                   f"appid {str(transaction.get('appid'))[:32]} is not ours",
                                   **fields)
        if payment is None:
            return await _mismatch(session, notification_id, event_type,
                                   "no payment has this out_trade_no", unknown=True, **fields)
        if state not in PAID_TRADE_STATES:
            if payment.status not in payments.PAID_STATES:
                payment.trade_state = state[:32]
            await _record(session, notification_id, event_type, outcome="ignored",
                          detail=f"trade_state {state}", **fields)
            return Applied("ignored", f"trade_state {state}")
        if total != payment.amount:
            return await _mismatch(session, notification_id, event_type,
                                   f"amount {total} fen, the payment is {payment.amount} fen",
                                   **fields)
        if payment.transaction_id:
            if payment.transaction_id != transaction_id:
                return await _mismatch(session, notification_id, event_type,
                                       f"paid before by transaction {payment.transaction_id}",
                                       **fields)
            await _record(session, notification_id, event_type, outcome="duplicate", **fields)
            return Applied("duplicate")
        return await _mark_paid(session, payment, transaction, notification_id, event_type,
                                fields)

    result = await run_transaction(resources.db, work)
    NOTIFY_OUTCOMES.labels(kind="transaction", outcome=result.outcome).inc()
    return result


async def _mark_paid(session: AsyncSession, payment: Payment, transaction: dict[str, Any],
                     notification_id: str, event_type: str, fields: dict[str, Any]) -> Applied:
    closed_before = payment.status == "closed"
    payment.status = "paid"
    payment.trade_state = "SUCCESS"
    payment.transaction_id = fields["transaction_id"] or None
    payment.paid_amount = payment.amount
    payment.paid_at = wechat_time(transaction.get("success_time")) or utcnow()
    payment.last_error = ""
    await session.flush()
    took = await payables.payable(payment.payable_type).on_paid(session, payment)
    if took:
        outcome, detail = "applied", ""
    else:
        # Paid after the payable gave up (cancelled, closed while the payer was paying): the
        # money goes back, in this same transaction.
        await payments.refund_later(
            session, payable_type=payment.payable_type, payable_id=payment.payable_id,
            out_refund_no=auto_refund_no(payment), amount=payment.paid_amount,
            reason=AUTO_REFUND_REASON, source_type="payment", source_id=payment.id)
        outcome = "refund_after_cancel"
        detail = "paid after close" if closed_before else "the payable refused the payment"
        log.warning("payment %s arrived for a %s that no longer takes it: refunding",
                    payment.out_trade_no, payment.payable_type)
    await _record(session, notification_id, event_type, outcome=outcome, detail=detail,
                  **fields)
    return Applied(outcome, detail)


def auto_refund_no(payment: Payment) -> str:
    """The out_refund_no of a payment's automatic refund: one per payment, so a rerun never
    refunds twice."""
    return f"AUTO-{payment.id}"


async def record_trade_state(resources: Resources, payment_id: int, state: str,
                             detail: str = "") -> None:
    """What a query found for an unpaid payment (NOTPAY, CLOSED, PAYERROR, ...): kept on the
    payment, and a final state once as a result row (notification id query:<no>:<state>)."""
    async def work(session: AsyncSession) -> None:
        payment = await payments.lock_payment(session, payment_id)
        if payment.status in payments.PAID_STATES:
            return
        payment.trade_state = state[:32]
        if state in ("CLOSED", "PAYERROR", "REVOKED"):
            await _record(session, f"query:{payment.out_trade_no}:{state}", "QUERY." + state,
                          outcome="ignored", detail=detail, out_trade_no=payment.out_trade_no,
                          state=state)

    await run_transaction(resources.db, work)


# -- refunds ----------------------------------------------------------------------------------


async def lock_refund_by_no(session: AsyncSession, out_refund_no: str) -> PaymentRefund | None:
    return (await session.execute(
        select(PaymentRefund).where(PaymentRefund.out_refund_no == out_refund_no)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


async def lock_refund(session: AsyncSession, refund_id: int) -> PaymentRefund | None:
    return (await session.execute(
        select(PaymentRefund).where(PaymentRefund.id == refund_id)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()


async def apply_refund_result(resources: Resources, result: dict[str, Any], *,
                              notification_id: str | None, event_type: str,
                              mchid: str) -> Applied:
    """Apply a refund's state from WeChat (a REFUND.* notify's resource, the refund call's
    reply, a query's reply): PROCESSING is noted; SUCCESS, CLOSED and ABNORMAL settle the
    refund once, under its row lock, calling the payable's on_refund_settled. An abnormal
    refund may still end in success or closed (WeChat's retry); a final one never changes.
    `notification_id`: record the result once under it (None for a call's reply)."""
    out_refund_no = str(result.get("out_refund_no") or "")
    status = str(result.get("refund_status") or result.get("status") or "")
    amount = result.get("amount") if isinstance(result.get("amount"), dict) else {}
    refund_fen = _fen((amount or {}).get("refund"))
    fields: dict[str, Any] = {"out_trade_no": str(result.get("out_trade_no") or ""),
                              "out_refund_no": out_refund_no,
                              "transaction_id": str(result.get("transaction_id") or ""),
                              "state": status, "amount": refund_fen or 0}
    note = notification_id or ""

    async def work(session: AsyncSession) -> Applied:
        refund = await lock_refund_by_no(session, out_refund_no) if out_refund_no else None
        if note:
            seen = await _seen(session, note)
            if seen is not None:
                return Applied(seen.outcome, seen.detail, seen=True,
                               unknown=seen.outcome == "mismatch" and refund is None)
        if "mchid" in result and result.get("mchid") != mchid:
            return await _mismatch(session, note or _reply_id(fields), event_type,
                                   f"mchid {str(result.get('mchid'))[:32]} is not ours",
                                   **fields)
        if refund is None:
            return await _mismatch(session, note or _reply_id(fields), event_type,
                                   "no refund has this out_refund_no", unknown=True, **fields)
        payment = await session.get(Payment, refund.payment_id)
        assert payment is not None
        new = REFUND_STATES.get(status)
        problem = None
        if fields["out_trade_no"] and fields["out_trade_no"] != payment.out_trade_no:
            problem = f"the refund is of {payment.out_trade_no}"
        elif refund_fen is not None and refund_fen != refund.amount:
            problem = f"refund {refund_fen} fen, ours is {refund.amount} fen"
        elif new is None:
            problem = f"unknown refund status {status[:32]}"
        if problem is not None:
            return await _mismatch(session, note or _reply_id(fields), event_type, problem,
                                   **fields)
        assert new is not None
        outcome = await _move_refund(session, refund, payment, new, result)
        if note:
            await _record(session, note, event_type, outcome=outcome, **fields)
        return Applied(outcome)

    applied = await run_transaction(resources.db, work)
    NOTIFY_OUTCOMES.labels(kind="refund", outcome=applied.outcome).inc()
    return applied


def _reply_id(fields: dict[str, Any]) -> str:
    return f"reply:{fields['out_refund_no']}:{fields['state']}"


async def _move_refund(session: AsyncSession, refund: PaymentRefund, payment: Payment,
                       new: str, result: dict[str, Any]) -> str:
    """The refund's next state, if it has one; "applied" or "duplicate"."""
    refund_id = str(result.get("refund_id") or "")[:64]
    if refund.status in ("success", "closed") or refund.status == new:
        return "duplicate"
    if new == "processing":
        if refund.status != "pending":
            return "duplicate"  # an abnormal refund stays abnormal until it ends
        refund.status, refund.refund_id = "processing", refund_id or refund.refund_id
        refund.last_error = ""
        return "applied"
    await settle_refund(session, refund, payment, new, refund_id=refund_id,
                        succeeded_at=wechat_time(result.get("success_time")))
    return "applied"


async def settle_refund(session: AsyncSession, refund: PaymentRefund, payment: Payment,
                        status: str, *, refund_id: str = "", error: str = "",
                        succeeded_at: dt.datetime | None = None) -> None:
    """Mark a locked refund success, abnormal or closed, tell its payable, and move the
    payment's totals: a success adds to refunded_amount (the payment is "refunded" once all
    of it is), a refund that no longer holds money gives its amount back to what can be
    refunded. Caller commits."""
    held_before = payments.holds_money(refund)
    refund.status = status
    if refund_id:
        refund.refund_id = refund_id
    refund.last_error = error[:255]
    if status == "success":
        refund.succeeded_at = succeeded_at or utcnow()
    await session.flush()
    await payables.payable(payment.payable_type).on_refund_settled(session, refund)
    payment = await payments.lock_payment(session, payment.id)
    held_now = payments.holds_money(refund)
    if held_before and not held_now:
        payment.refund_reserved -= refund.amount
    elif held_now and not held_before:
        payment.refund_reserved += refund.amount
    if status == "success":
        payment.refunded_amount += refund.amount
        if payment.refunded_amount >= payment.paid_amount:
            payment.status = "refunded"
