"""A payable type of the tests' own ("testpay") and helpers for the payments tests.

Registered when imported: by the payments test modules in the test process, and by the test
worker (TASK_EXTRA_MODULES in tests/fixtures_worker.py), whose tasks call on_paid and
on_refund_settled too. Both record their calls in Redis under the run's prefix, so a test
counts calls made by the gateway, the worker or itself alike; `refuse(payable_id)` makes
on_paid answer False (the payable "was cancelled").
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select

from models.base import utcnow
from models.payments import Payment, PaymentNotification, PaymentRefund
from models.users import User, UserSettings
from pawhome.identity import tokens
from pawhome.payments import payables, payments
from settings import get_settings
from tests.helpers import Session

PAYABLE = "testpay"


def _key(*parts: Any) -> str:
    return get_settings().redis_prefix + ":".join(["testpay", *map(str, parts)])


async def _redis() -> aioredis.Redis:
    # A client per call: the hooks run on whichever event loop (test, gateway, worker) calls.
    return aioredis.Redis.from_url(get_settings().redis_url)


async def _on_paid(session, payment: Payment) -> bool:
    client = await _redis()
    try:
        await client.hincrby(_key("paid", payment.payable_id), "calls", 1)
        await client.expire(_key("paid", payment.payable_id), 3600)
        return not await client.exists(_key("refuse", payment.payable_id))
    finally:
        await client.aclose()


async def _on_refund_settled(session, refund: PaymentRefund) -> None:
    client = await _redis()
    try:
        await client.hincrby(_key("refund", refund.out_refund_no), refund.status, 1)
        await client.expire(_key("refund", refund.out_refund_no), 3600)
    finally:
        await client.aclose()


payables.register_payable(PAYABLE, on_paid=_on_paid, on_refund_settled=_on_refund_settled)


async def refuse(payable_id: int) -> None:
    client = await _redis()
    try:
        await client.set(_key("refuse", payable_id), "1", ex=3600)
    finally:
        await client.aclose()


async def paid_calls(payable_id: int) -> int:
    client = await _redis()
    try:
        return int(await client.hget(_key("paid", payable_id), "calls") or 0)
    finally:
        await client.aclose()


async def refund_calls(out_refund_no: str) -> dict[str, int]:
    client = await _redis()
    try:
        raw = await client.hgetall(_key("refund", out_refund_no))
        return {k.decode(): int(v) for k, v in raw.items()}
    finally:
        await client.aclose()


# -- rows and people ---------------------------------------------------------------------------

async def make_payer(resources, *, openid: bool = True, role: str = "user") -> Session:
    """A user (with a WeChat openid unless told otherwise) and an access token."""
    async with resources.db.session() as session, session.begin():
        user = User(openid=("o" + uuid.uuid4().hex[:27]) if openid else None,
                    nickname="p" + uuid.uuid4().hex[:6], role=role, status="active",
                    last_login_at=utcnow())
        session.add(user)
        await session.flush()
        session.add(UserSettings(user_id=user.id, notification_prefs={}, privacy_prefs={}))
        user_id, user_openid = user.id, user.openid or ""
    token, _ = tokens.issue_access_token(resources.settings, user_id, role, uuid.uuid4().hex)
    return Session(user_id, token, "", user_openid)


def new_payable_id() -> int:
    return uuid.uuid4().int % 10**12


def new_trade_no() -> str:
    return "T" + uuid.uuid4().hex[:20].upper()


async def prepare(resources, payer: Session, *, payable_id: int | None = None,
                  amount: int = 8800, out_trade_no: str | None = None,
                  minutes: int = 30) -> dict[str, Any]:
    """prepare_payment for a fresh testpay payable; the reply plus its payable_id."""
    payable_id = payable_id or new_payable_id()
    reply = await payments.prepare_payment(
        resources, payable_type=PAYABLE, payable_id=payable_id, user_id=payer.user_id,
        out_trade_no=out_trade_no or new_trade_no(), amount=amount, description="猫粮 2kg",
        time_expire=utcnow() + dt.timedelta(minutes=minutes))
    return {**reply, "payable_id": payable_id}


async def payment_row(resources, out_trade_no: str) -> Payment:
    async with resources.db.session() as session:
        return (await session.execute(select(Payment).where(
            Payment.out_trade_no == out_trade_no))).scalar_one()


async def refund_row(resources, out_refund_no: str) -> PaymentRefund | None:
    async with resources.db.session() as session:
        return (await session.execute(select(PaymentRefund).where(
            PaymentRefund.out_refund_no == out_refund_no))).scalar_one_or_none()


async def refunds_of(resources, payment_id: int) -> list[PaymentRefund]:
    async with resources.db.session() as session:
        return list((await session.execute(select(PaymentRefund).where(
            PaymentRefund.payment_id == payment_id).order_by(PaymentRefund.id))).scalars())


async def results_of(resources, out_trade_no: str) -> list[PaymentNotification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(PaymentNotification).where(
            PaymentNotification.out_trade_no == out_trade_no)
            .order_by(PaymentNotification.id))).scalars())


async def refund_later(resources, payable_id: int, out_refund_no: str, amount: int,
                       reason: str = "不想要了") -> PaymentRefund:
    """payments.refund_later in a transaction of its own (as a payable's domain would)."""
    async with resources.db.session() as session, session.begin():
        return await payments.refund_later(
            session, payable_type=PAYABLE, payable_id=payable_id, out_refund_no=out_refund_no,
            amount=amount, reason=reason, source_type="test", source_id=None)
