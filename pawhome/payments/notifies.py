"""WeChat Pay's notifies (payment and refund results posted to us) and the simulated
provider's stand-in for them.

`handle_notification(resources, headers, body)` is the whole notify endpoint: verify and
decrypt (the client's `receive_notification`: serial, signature, timestamp, AEAD), then apply
through pawhome/payments/settlement.py. It answers `(status, body)` in WeChat's shape:
200 {"code": "SUCCESS"} once the result is ours (applied now or before, or nothing to do);
anything else is non-2xx {"code": "FAIL", "message"} so WeChat retries — 401 for a notify
we cannot verify, 404 for a number we do not know, 409 for one that contradicts our records.
docs/payments.md ("Notify handling").
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from models.payments import Payment
from pawhome.integrations import wechatpay
from pawhome.payments import payments, settlement
from pawhome.platform.errors import Conflict, NotFound, PaymentClosed
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.payments")

SUCCESS: dict[str, str] = {"code": "SUCCESS", "message": "成功"}
REJECTED = {
    "bad_signature": "signature verification failed",
    "unknown_serial": "unknown Wechatpay-Serial",
    "stale_timestamp": "Wechatpay-Timestamp too far from our clock",
    "malformed": "malformed notify",
    "decrypt_failed": "resource could not be decrypted",
}


def fail(message: str) -> dict[str, str]:
    """WeChat's failure answer (sent with a non-2xx status)."""
    return {"code": "FAIL", "message": message}


async def handle_notification(resources: Resources, headers: Mapping[str, str],
                              body: bytes) -> tuple[int, dict[str, str]]:
    """Verify, decrypt and apply one notify (payment or refund); the HTTP status and body to
    answer WeChat with. Database outages raise (the endpoint answers 503 FAIL)."""
    if len(body) > resources.settings.payment_notify_max_bytes:
        return 413, fail("notify too large")
    client = wechatpay.client_for(resources)
    try:
        notice = await client.receive_notification(headers, body)
    except wechatpay.NotifyRejected as rejected:
        log.warning("wechatpay notify refused: %s", rejected)
        settlement.NOTIFY_OUTCOMES.labels(kind="notify", outcome=rejected.reason).inc()
        return 401, fail(REJECTED.get(rejected.reason, "notify refused"))
    resource = notice.resource
    if notice.event_type.startswith("TRANSACTION."):
        applied = await settlement.apply_transaction(
            resources, resource, notification_id=notice.id, event_type=notice.event_type,
            mchid=client.mchid, appid=client.appid)
    elif notice.event_type.startswith("REFUND."):
        applied = await settlement.apply_refund_result(
            resources, resource, notification_id=notice.id, event_type=notice.event_type,
            mchid=client.mchid)
    else:  # an event we did not ask for: nothing to apply, no reason for WeChat to retry
        log.info("wechatpay notify %s of type %s ignored", notice.id, notice.event_type)
        return 200, SUCCESS
    if applied.accepted:
        return 200, SUCCESS
    return (404 if applied.unknown else 409), fail(applied.detail or "does not match")


# -- the simulated provider ------------------------------------------------------------------


async def confirm_simulated_payment(resources: Resources, user_id: int, role: str,
                                    out_trade_no: str) -> dict[str, Any]:
    """Development only (payment_provider "simulated"): pay a prepaid payment as its payer
    would — the simulated WeChat settles the transaction and signs a TRANSACTION.SUCCESS
    notify, which goes through handle_notification like one from WeChat. The payer's own
    payments only (an admin's: any). Returns the notify's answer and the payment after it."""
    client = wechatpay.client_for(resources)
    if client.simulator is None:
        raise NotFound("There is no simulated payment provider here")
    async with resources.db.session() as session:
        payment = (await session.execute(select(Payment).where(
            Payment.out_trade_no == out_trade_no))).scalar_one_or_none()
        if payment is None or (payment.user_id != user_id and role != "admin"):
            raise NotFound("No such payment")
    try:
        headers, body = await client.simulator.build_payment_notification(out_trade_no)
    except LookupError:
        raise Conflict("Ask to pay first: WeChat has no transaction for this yet") from None
    except ValueError:
        raise PaymentClosed(data={"out_trade_no": out_trade_no}) from None
    status, reply = await handle_notification(resources, headers, body)
    async with resources.db.session() as session:
        found = await session.get(Payment, payment.id)
        assert found is not None
        return {"notify_status": status, "notify_reply": reply,
                "payment": payments.payment_view(found)}


async def simulate_refund_notify(resources: Resources, out_refund_no: str) -> str:
    """Development only: the simulated WeChat completes a refund it was asked for and
    notifies, through handle_notification. Returns WeChat's answer code."""
    client = wechatpay.client_for(resources)
    if client.simulator is None:
        return "not_simulated"
    try:
        headers, body = await client.simulator.build_refund_notification(out_refund_no)
    except LookupError:
        return "unknown"
    status, reply = await handle_notification(resources, headers, body)
    if status != 200:
        log.warning("simulated refund notify %s answered %s %s", out_refund_no, status, reply)
    return reply["code"]
