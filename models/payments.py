"""Payment tables: payments (one per payable, WeChat's out_trade_no), the notifications
WeChat Pay sent us (deduplicated), refunds (WeChat's out_refund_no) and the daily
reconciliation reports. docs/payments.md. Amounts in integer fen.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

PAYMENT_STATES = ("created", "prepaid", "paid", "closed", "refunded")
PAYMENT_REFUND_STATES = ("pending", "processing", "success", "abnormal", "closed")
NOTIFICATION_OUTCOMES = ("applied", "duplicate", "refund_after_cancel", "mismatch", "ignored")


class Payment(Base):
    """What is owed for one payable (an order, a booking deposit) and how it went."""
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("payable_type", "payable_id"),
        Index("ix_payments_status_created", "status", "created_at"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    payable_type: Mapped[str] = mapped_column(String(16))  # order | ...
    payable_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel: Mapped[str] = mapped_column(String(16), default="wechat")  # wechat | simulated
    amount: Mapped[int] = mapped_column(BigInteger)  # fen
    description: Mapped[str] = mapped_column(String(127), default="")
    status: Mapped[str] = mapped_column(String(16), default="created")  # PAYMENT_STATES
    # What WeChat last said of the transaction (NOTPAY, SUCCESS, CLOSED, PAYERROR, ...).
    trade_state: Mapped[str] = mapped_column(String(32), default="")
    prepay_id: Mapped[str] = mapped_column(String(64), default="")
    prepaid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    prepay_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    time_expire: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    transaction_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # Fen promised to refunds that are open or done (a new refund may take at most
    # paid_amount - refund_reserved); refunded_amount: fen WeChat has refunded.
    refund_reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_queried_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentNotification(Base):
    """A verified notification from WeChat Pay (or a query result applied the same way),
    kept once per notification id: a retry of the same notify changes nothing."""
    __tablename__ = "payment_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(32))  # TRANSACTION.SUCCESS, REFUND.*
    out_trade_no: Mapped[str] = mapped_column(String(32), default="", index=True)
    out_refund_no: Mapped[str] = mapped_column(String(32), default="")
    transaction_id: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(32), default="")  # trade_state/refund_status
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # NOTIFICATION_OUTCOMES; notification_id "query:..." for a result our query found
    outcome: Mapped[str] = mapped_column(String(24), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentRefund(Base):
    """One refund of a payment (WeChat's out_refund_no), whole or partial."""
    __tablename__ = "payment_refunds"
    __table_args__ = (Index("ix_payment_refunds_status_created", "status", "created_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    out_refund_no: Mapped[str] = mapped_column(String(32), unique=True)
    payment_id: Mapped[int] = mapped_column(BigInteger, index=True)
    refund_id: Mapped[str] = mapped_column(String(64), default="")  # WeChat's
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # PAYMENT_REFUND_STATES
    # Who asked for it: the payable's own record (a refund request, an automatic refund).
    source_type: Mapped[str] = mapped_column(String(24), default="")
    source_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_queried_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReconciliationReport(Base):
    """One day's trade bill from WeChat Pay compared with our payments."""
    __tablename__ = "reconciliation_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bill_date: Mapped[dt.date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(16))  # matched | mismatched | failed
    bill_count: Mapped[int] = mapped_column(Integer, default=0)
    our_count: Mapped[int] = mapped_column(Integer, default=0)
    bill_total: Mapped[int] = mapped_column(BigInteger, default=0)  # fen paid minus refunded
    our_total: Mapped[int] = mapped_column(BigInteger, default=0)
    mismatch_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"kind": "missing_here" | "missing_there" | "amount" | "refund_missing_here" | ...,
    #   "out_trade_no", ...}] (pawhome/payments/reconciliation.py)
    mismatches: Mapped[list] = mapped_column(JSON, default=list)
    detail: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
