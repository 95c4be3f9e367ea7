"""Daily reconciliation: WeChat Pay's trade bill for a day (Asia/Shanghai) against the
payments we marked paid and the refunds we marked successful that day. Every difference —
paid in WeChat but not here or the reverse, an amount or transaction id that differs, the
same for refunds — goes into the day's ReconciliationReport, and admins get a system
notification when there is any. Run by beat each morning for the day before, or by an admin
for any past day. docs/payments.md ("Reconciliation").
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.payments import Payment, PaymentRefund, ReconciliationReport
from pawhome.integrations import wechatpay
from pawhome.payments import alerts
from pawhome.platform import audit
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import NotFound, ValidationFailed, WeChatPayUnavailable, field_error
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.payments")

CHINA = dt.timezone(dt.timedelta(hours=8))  # WeChat's bill days are Beijing days
MISMATCHES_KEPT = 500  # listed in the report; mismatch_count counts them all


@dataclass(frozen=True)
class OurPayment:
    out_trade_no: str
    transaction_id: str
    amount: int
    status: str = "paid"


@dataclass(frozen=True)
class OurRefund:
    out_refund_no: str
    out_trade_no: str
    amount: int


@dataclass
class Comparison:
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    bill_count: int = 0
    our_count: int = 0
    bill_total: int = 0  # fen: paid minus refunded
    our_total: int = 0


def compare(bill_rows: list[dict[str, Any]], paid: list[OurPayment],
            refunds: list[OurRefund],
            elsewhere: dict[str, OurPayment] | None = None) -> Comparison:
    """The day's bill against our payments paid and refunds settled that day. `elsewhere`:
    our payments (any day) of out_trade_nos the bill has and `paid` lacks, to say what we
    know of them. Kinds: missing_here, missing_there, amount, transaction, refund_missing_here,
    refund_missing_there, refund_amount."""
    elsewhere = elsewhere or {}
    result = Comparison(our_count=len(paid) + len(refunds))
    bill_paid: dict[str, dict[str, Any]] = {}
    bill_refunds: dict[str, dict[str, Any]] = {}
    for row in bill_rows:
        state = str(row.get("trade_state") or "")
        if state == "SUCCESS":
            bill_paid[str(row["out_trade_no"])] = row
            result.bill_total += int(row.get("amount") or 0)
        elif state == "REFUND":
            bill_refunds[str(row["out_refund_no"])] = row
            result.bill_total -= int(row.get("refund_amount") or 0)
        else:
            continue  # revoked and the like: no money moved
        result.bill_count += 1
    ours = {p.out_trade_no: p for p in paid}
    for no, row in sorted(bill_paid.items()):
        mine = ours.get(no)
        if mine is None:
            known = elsewhere.get(no)
            result.mismatches.append({
                "kind": "missing_here", "out_trade_no": no,
                "transaction_id": str(row.get("transaction_id") or ""),
                "bill_amount": int(row.get("amount") or 0),
                "our_status": known.status if known else None})
        elif int(row.get("amount") or 0) != mine.amount:
            result.mismatches.append({"kind": "amount", "out_trade_no": no,
                                      "bill_amount": int(row.get("amount") or 0),
                                      "our_amount": mine.amount})
        elif str(row.get("transaction_id") or "") != mine.transaction_id:
            result.mismatches.append({"kind": "transaction", "out_trade_no": no,
                                      "bill_transaction_id": str(row.get("transaction_id")),
                                      "our_transaction_id": mine.transaction_id})
    for no, mine in sorted(ours.items()):
        result.our_total += mine.amount
        if no not in bill_paid:
            result.mismatches.append({"kind": "missing_there", "out_trade_no": no,
                                      "transaction_id": mine.transaction_id,
                                      "our_amount": mine.amount})
    our_refunds = {r.out_refund_no: r for r in refunds}
    for no, row in sorted(bill_refunds.items()):
        refund = our_refunds.get(no)
        if refund is None:
            result.mismatches.append({"kind": "refund_missing_here", "out_refund_no": no,
                                      "out_trade_no": str(row.get("out_trade_no") or ""),
                                      "bill_amount": int(row.get("refund_amount") or 0)})
        elif int(row.get("refund_amount") or 0) != refund.amount:
            result.mismatches.append({"kind": "refund_amount", "out_refund_no": no,
                                      "out_trade_no": refund.out_trade_no,
                                      "bill_amount": int(row.get("refund_amount") or 0),
                                      "our_amount": refund.amount})
    for no, refund in sorted(our_refunds.items()):
        result.our_total -= refund.amount
        if no not in bill_refunds:
            result.mismatches.append({"kind": "refund_missing_there", "out_refund_no": no,
                                      "out_trade_no": refund.out_trade_no,
                                      "our_amount": refund.amount})
    return result


def day_bounds(bill_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The Beijing day as naive UTC [start, end)."""
    start = dt.datetime.combine(bill_date, dt.time(), CHINA).astimezone(dt.UTC)
    start = start.replace(tzinfo=None)
    return start, start + dt.timedelta(days=1)


def china_today() -> dt.date:
    return dt.datetime.now(CHINA).date()


def parse_bill_date(text: str) -> dt.date:
    """A report's day from a path (YYYY-MM-DD, not after today in Beijing)."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(errors=[field_error("bill_date", "a date: YYYY-MM-DD")]) from None
    if len(text) != 10 or day > china_today():
        raise ValidationFailed(errors=[field_error("bill_date",
                                                   "a past day (YYYY-MM-DD, Beijing time)")])
    return day


async def _ours(session: AsyncSession, bill_date: dt.date,
                bill_rows: list[dict[str, Any]]) -> tuple[list[OurPayment], list[OurRefund],
                                                         dict[str, OurPayment]]:
    start, end = day_bounds(bill_date)
    paid = [OurPayment(p.out_trade_no, p.transaction_id or "", p.paid_amount, p.status)
            for p in (await session.execute(select(Payment).where(
                Payment.paid_at >= start, Payment.paid_at < end,
                Payment.status.in_(("paid", "refunded"))))).scalars()]
    refunds = [OurRefund(row.out_refund_no, row.out_trade_no, row.amount)
               for row in await session.execute(
                   select(PaymentRefund.out_refund_no, Payment.out_trade_no,
                          PaymentRefund.amount)
                   .join(Payment, Payment.id == PaymentRefund.payment_id)
                   .where(PaymentRefund.status == "success",
                          PaymentRefund.succeeded_at >= start,
                          PaymentRefund.succeeded_at < end))]
    ours = {p.out_trade_no for p in paid}
    unknown = sorted({str(r.get("out_trade_no")) for r in bill_rows
                      if r.get("trade_state") == "SUCCESS"} - ours)
    elsewhere: dict[str, OurPayment] = {}
    for chunk in range(0, len(unknown), 500):
        for p in (await session.execute(select(Payment).where(
                Payment.out_trade_no.in_(unknown[chunk:chunk + 500])))).scalars():
            elsewhere[p.out_trade_no] = OurPayment(p.out_trade_no, p.transaction_id or "",
                                                   p.paid_amount, p.status)
    return paid, refunds, elsewhere


async def run_reconciliation(resources: Resources, bill_date: dt.date | str, *,
                             actor_id: int | None = None) -> dict[str, Any]:
    """Download the day's trade bill, compare, store the day's report (replacing an earlier
    run's) and tell admins about mismatches. A day as text must be YYYY-MM-DD and not after
    today (422, field bill_date). WeChat unavailable: WeChatPayUnavailable (a failed report
    is kept for a day that has none yet). `actor_id`: the admin who asked (audited)."""
    day = parse_bill_date(bill_date) if isinstance(bill_date, str) else bill_date
    client = wechatpay.client_for(resources)
    try:
        rows = await client.trade_bill(day)
    except wechatpay.WeChatPayError as error:
        log.warning("trade bill of %s: %s", day, error)
        await _keep_failure(resources, day, str(error), actor_id)
        raise WeChatPayUnavailable(f"WeChat Pay's bill of {day} could not be had: "
                                   f"{error.message}") from error

    async def work(session: AsyncSession) -> dict[str, Any]:
        paid, refunds, elsewhere = await _ours(session, day, rows)
        result = compare(rows, paid, refunds, elsewhere)
        report = await _report_row(session, day)
        report.status = "mismatched" if result.mismatches else "matched"
        report.bill_count, report.our_count = result.bill_count, result.our_count
        report.bill_total, report.our_total = result.bill_total, result.our_total
        report.mismatch_count = len(result.mismatches)
        report.mismatches = result.mismatches[:MISMATCHES_KEPT]
        report.detail = ""
        report.updated_at = utcnow()
        await session.flush()
        if actor_id is not None:
            audit.record(session, actor_id=actor_id, actor_role="admin",
                         action="payments.reconcile", target_type="reconciliation",
                         target_id=day.isoformat(),
                         after={"status": report.status, "mismatches": report.mismatch_count})
        if result.mismatches:
            kinds = sorted({m["kind"] for m in result.mismatches})
            await alerts.tell_admins(
                session, "payment_reconciliation", "对账发现差异",
                f"{day} 微信支付账单有 {len(result.mismatches)} 处与记录不符"
                f"（{', '.join(kinds)}）", target_type="reconciliation",
                extra={"bill_date": day.isoformat()})
        return report_view(report)

    return await run_transaction(resources.db, work)


async def _report_row(session: AsyncSession, bill_date: dt.date) -> ReconciliationReport:
    report = (await session.execute(
        select(ReconciliationReport).where(ReconciliationReport.bill_date == bill_date)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    if report is None:
        report = ReconciliationReport(bill_date=bill_date, status="failed", mismatches=[])
        session.add(report)
    return report


async def _keep_failure(resources: Resources, bill_date: dt.date, error: str,
                        actor_id: int | None) -> None:
    async def work(session: AsyncSession) -> None:
        report = await _report_row(session, bill_date)
        if report.id is None or report.status == "failed":
            report.status, report.detail = "failed", error[:255]
            report.updated_at = utcnow()
        if actor_id is not None:
            audit.record(session, actor_id=actor_id, actor_role="admin",
                         action="payments.reconcile", target_type="reconciliation",
                         target_id=bill_date.isoformat(), after={"status": "failed",
                                                                 "error": error[:200]})

    await run_transaction(resources.db, work)


async def reconcile_yesterday(resources: Resources) -> dict[str, Any]:
    """Beat: reconcile the day before today (Beijing)."""
    return await run_reconciliation(resources, china_today() - dt.timedelta(days=1))


def report_view(report: ReconciliationReport, *, full: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "bill_date": report.bill_date.isoformat(), "status": report.status,
        "bill_count": report.bill_count, "our_count": report.our_count,
        "bill_total": report.bill_total, "our_total": report.our_total,
        "mismatch_count": report.mismatch_count, "detail": report.detail,
        "created_at": report.created_at, "updated_at": report.updated_at}
    if full:
        view["mismatches"] = list(report.mismatches or [])
    return view


async def list_reports(resources: Resources, query: PageQuery) -> dict[str, Any]:
    """Reports newest day first, without their mismatch lists."""
    async with resources.db.session() as session:
        total = int((await session.execute(
            select(func.count()).select_from(ReconciliationReport))).scalar_one())
        rows = (await session.execute(
            select(ReconciliationReport).order_by(ReconciliationReport.bill_date.desc())
            .offset(query.offset).limit(query.limit))).scalars()
        return page_result([report_view(r, full=False) for r in rows], total, query)


async def get_report(resources: Resources, bill_date: str) -> dict[str, Any]:
    try:
        day = dt.date.fromisoformat(bill_date)
    except ValueError:
        raise NotFound("No report for that day") from None
    async with resources.db.session() as session:
        report = (await session.execute(select(ReconciliationReport).where(
            ReconciliationReport.bill_date == day))).scalar_one_or_none()
        if report is None:
            raise NotFound("No report for that day")
        return report_view(report)
