"""Tasks of the payments queue: closing WeChat Pay transactions of payables that will not be
paid, sending refunds, the beat jobs for missing notifies and stuck refunds, the daily
reconciliation, and the simulated provider's refund notifies (pawhome/payments/).

Each takes ids and is idempotent: the domain reads the current state before acting and
WeChat's calls are idempotent by out_trade_no / out_refund_no. WeChat Pay outages raise
WeChatPayUnavailable (transient: retried with backoff).
"""
from __future__ import annotations

import datetime as dt

from celery import shared_task

from pawhome.payments import jobs, notifies, reconciliation
from workers import runtime
from workers.base import PERIODIC

# Calls out carry WECHATPAY_TIMEOUT each; the sweeps stop claiming work past their budget.
CALL_LIMITS = {"soft_time_limit": 60, "time_limit": 90}
SWEEP_LIMITS = {"soft_time_limit": 120, "time_limit": 150}


@shared_task(name="payments.close_payment", **CALL_LIMITS)
def close_payment(payable_type: str, payable_id: int) -> str:
    """Close a payable's unpaid payment here and at WeChat (payments.close_later)."""
    return runtime.run(jobs.close_payment(runtime.resources(), payable_type, payable_id))


@shared_task(name="payments.send_refund", **CALL_LIMITS)
def send_refund(refund_id: int) -> str:
    """Ask WeChat for a pending refund (payments.refund_later); returns its status."""
    return runtime.run(jobs.send_refund(runtime.resources(), refund_id))


@shared_task(name="payments.query_payment", **CALL_LIMITS)
def query_payment(payment_id: int) -> str:
    """Ask WeChat about one unpaid payment and apply what it says."""
    return runtime.run(jobs.query_payment(runtime.resources(), payment_id))


@shared_task(name="payments.query_unpaid", **PERIODIC, **SWEEP_LIMITS)
def query_unpaid() -> int:
    """Beat: prepaid payments without a notify for a while are queried (a batch a run)."""
    return runtime.run(jobs.query_unpaid_payments(runtime.resources()))


@shared_task(name="payments.query_stuck_refunds", **PERIODIC, **SWEEP_LIMITS)
def query_stuck_refunds() -> int:
    """Beat: refunds pending or processing for a while are sent again or queried."""
    return runtime.run(jobs.query_stuck_refunds(runtime.resources()))


@shared_task(name="payments.reconcile", **SWEEP_LIMITS)
def reconcile(bill_date: str) -> str:
    """Reconcile one day (YYYY-MM-DD) against WeChat's trade bill; returns the report's
    status."""
    return str(runtime.run(reconciliation.run_reconciliation(
        runtime.resources(), dt.date.fromisoformat(bill_date)))["status"])


@shared_task(name="payments.reconcile_yesterday", **SWEEP_LIMITS)
def reconcile_yesterday() -> str:
    """Beat, each morning: reconcile yesterday (Beijing); retried while WeChat's bill is not
    ready. Returns the report's status."""
    return str(runtime.run(reconciliation.reconcile_yesterday(runtime.resources()))["status"])


@shared_task(name="payments.simulate_refund_notify", **CALL_LIMITS)
def simulate_refund_notify(out_refund_no: str) -> str:
    """Development (simulated provider): the simulated WeChat completes a refund and
    notifies through the notify code path."""
    return runtime.run(notifies.simulate_refund_notify(runtime.resources(), out_refund_no))
