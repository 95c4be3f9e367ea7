"""Payments: the prepay (wx.requestPayment parameters the wechatpayv3 SDK verifies, the live
prepay reused), and WeChat's payment notify applied exactly once — against duplicates,
concurrent copies and every kind of forged, stale or contradicting notify — with the
payable's on_paid called once, or an automatic refund when the payable refuses the money.
Against the fake WeChat Pay server (tests/fakes/wechatpay.py)."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import func, select, update
from wechatpayv3 import WeChatPay, WeChatPayType

from models.base import utcnow
from models.payments import Payment
from pawhome.payments import jobs, payables, payments
from pawhome.platform.errors import Conflict, PaymentAlreadyPaid, PaymentClosed, ValidationFailed
from tests import payments_support as support
from tests.fakes.wechatpay import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_KEY,
    MERCHANT_KEY_PEM,
    MERCHANT_SERIAL,
    PUBLIC_KEY_ID,
    PUBLIC_KEY_PEM,
)

NOTIFY = "/v1/payments/wechat/notify"


def sdk() -> WeChatPay:
    """The wechatpayv3 SDK, as WeChat's reference for paySign."""
    return WeChatPay(wechatpay_type=WeChatPayType.MINIPROG, mchid=MCHID,
                     private_key=MERCHANT_KEY_PEM, cert_serial_no=MERCHANT_SERIAL, appid=APPID,
                     apiv3_key=APIV3_KEY, public_key=PUBLIC_KEY_PEM, public_key_id=PUBLIC_KEY_ID)


async def post_notify(api, headers: dict[str, str], body: bytes, path: str = NOTIFY):
    return await api.request("POST", path, headers=headers, body=body)


async def prepaid(resources, amount: int = 8800) -> dict:
    payer = await support.make_payer(resources)
    return {**await support.prepare(resources, payer, amount=amount), "payer": payer}


# -- prepay -------------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=60)
async def test_prepay_returns_request_payment_params_the_sdk_verifies(resources, wechatpay):
    payer = await support.make_payer(resources)
    reply = await support.prepare(resources, payer, amount=12345)
    assert set(reply) >= {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign",
                          "out_trade_no"}
    assert reply["signType"] == "RSA" and reply["appId"] == APPID
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body
    assert sent["amount"] == {"total": 12345, "currency": "CNY"}
    assert sent["payer"] == {"openid": payer.openid} and sent["out_trade_no"] == reply["out_trade_no"]
    assert sent["notify_url"].endswith(NOTIFY)
    assert reply["package"] == f"prepay_id={wechatpay.transactions[reply['out_trade_no']]['prepay_id']}"
    assert reply["paySign"] == sdk().sign([reply["appId"], reply["timeStamp"],
                                           reply["nonceStr"], reply["package"]])
    message = "\n".join([reply["appId"], reply["timeStamp"], reply["nonceStr"],
                         reply["package"]]) + "\n"
    MERCHANT_KEY.public_key().verify(base64.b64decode(reply["paySign"]), message.encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
    row = await support.payment_row(resources, reply["out_trade_no"])
    assert (row.status, row.amount, row.payable_type, row.user_id) == (
        "prepaid", 12345, support.PAYABLE, payer.user_id)
    assert row.prepay_expires_at <= row.time_expire
    assert wechatpay.refused == []


@pytest.mark.gen_test(timeout=60)
async def test_a_repeated_prepay_reuses_the_live_prepay_until_it_is_near_its_end(resources,
                                                                                wechatpay):
    payer = await support.make_payer(resources)
    first = await support.prepare(resources, payer)
    again = await support.prepare(resources, payer, payable_id=first["payable_id"],
                                  out_trade_no=first["out_trade_no"])
    assert again["package"] == first["package"]
    assert len(wechatpay.requests_to("/v3/pay/transactions/jsapi")) == 1  # no second call
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Payment).where(
            Payment.out_trade_no == first["out_trade_no"])
            .values(prepay_expires_at=utcnow() + dt.timedelta(seconds=60)))
    third = await support.prepare(resources, payer, payable_id=first["payable_id"],
                                  out_trade_no=first["out_trade_no"])
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")
    assert len(sent) == 2 and sent[0].body == sent[1].body  # the same order, asked again
    assert third["package"] == first["package"]  # WeChat answers the same prepay
    assert wechatpay.refused == []


@pytest.mark.gen_test(timeout=60)
async def test_the_prepay_never_outlives_time_expire(resources, wechatpay):
    payer = await support.make_payer(resources)
    reply = await support.prepare(resources, payer, minutes=10)
    row = await support.payment_row(resources, reply["out_trade_no"])
    assert row.prepay_expires_at == row.time_expire
    # Near its end, but a new prepay would end at time_expire too: it is handed out again.
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Payment).where(Payment.id == row.id).values(
            time_expire=utcnow() + dt.timedelta(seconds=90),
            prepay_expires_at=utcnow() + dt.timedelta(seconds=90)))
    again = await support.prepare(resources, payer, payable_id=reply["payable_id"],
                                  out_trade_no=reply["out_trade_no"], minutes=10)
    assert again["package"] == reply["package"]
    assert len(wechatpay.requests_to("/v3/pay/transactions/jsapi")) == 1


@pytest.mark.gen_test(timeout=60)
async def test_paying_is_refused_without_openid_when_paid_or_closed(resources, wechatpay):
    nobody = await support.make_payer(resources, openid=False)
    with pytest.raises(ValidationFailed) as caught:
        await support.prepare(resources, nobody)
    assert caught.value.errors == [{"field": "openid",
                                    "message": "log in with WeChat (wx.login) before paying"}]
    assert wechatpay.requests_to("/v3/pay/transactions/jsapi") == []

    paid = await prepaid(resources)
    wechatpay.pay(paid["out_trade_no"])
    await payments_apply(resources, wechatpay, paid["out_trade_no"])
    with pytest.raises(PaymentAlreadyPaid):
        await support.prepare(resources, paid["payer"], payable_id=paid["payable_id"],
                              out_trade_no=paid["out_trade_no"])

    closed = await prepaid(resources)
    assert await jobs.close_payment(resources, support.PAYABLE, closed["payable_id"]) == "closed"
    assert wechatpay.transaction(closed["out_trade_no"])["trade_state"] == "CLOSED"
    with pytest.raises(PaymentClosed):
        await support.prepare(resources, closed["payer"], payable_id=closed["payable_id"],
                              out_trade_no=closed["out_trade_no"])
    with pytest.raises(PaymentClosed):
        await payments.prepare_payment(
            resources, payable_type=support.PAYABLE, payable_id=support.new_payable_id(),
            user_id=closed["payer"].user_id, out_trade_no=support.new_trade_no(), amount=100,
            description="过期", time_expire=utcnow() - dt.timedelta(seconds=1))


@pytest.mark.gen_test(timeout=60)
async def test_another_payables_number_is_a_conflict_and_writes_nothing(resources, wechatpay):
    first = await prepaid(resources)
    other = support.new_payable_id()
    with pytest.raises(Conflict) as caught:
        await support.prepare(resources, first["payer"], payable_id=other,
                              out_trade_no=first["out_trade_no"])
    assert caught.value.errors == [{"field": "out_trade_no",
                                    "message": "already used by another payment"}]
    async with resources.db.session() as session:
        assert (await session.execute(select(func.count(Payment.id)).where(
            Payment.payable_id == other))).scalar_one() == 0
    assert len(wechatpay.requests_to("/v3/pay/transactions/jsapi")) == 1


@pytest.mark.gen_test(timeout=60)
async def test_wechat_down_is_503_and_paying_again_works(api, resources, wechatpay):
    from pawhome.platform.errors import WeChatPayUnavailable

    payer = await support.make_payer(resources)
    wechatpay.fail_next("/v3/pay/transactions/jsapi", 500)
    payable_id, no = support.new_payable_id(), support.new_trade_no()
    with pytest.raises(WeChatPayUnavailable):
        await support.prepare(resources, payer, payable_id=payable_id, out_trade_no=no)
    assert (await support.payment_row(resources, no)).status == "created"
    reply = await support.prepare(resources, payer, payable_id=payable_id, out_trade_no=no)
    assert reply["package"].startswith("prepay_id=wx")
    assert (await support.payment_row(resources, no)).status == "prepaid"


async def payments_apply(resources, wechatpay, out_trade_no: str) -> None:
    """Deliver the genuine notify of a paid transaction through the domain function."""
    from pawhome.payments import notifies

    headers, body = wechatpay.payment_notification(out_trade_no)
    assert await notifies.handle_notification(resources, headers, body) == (
        200, {"code": "SUCCESS", "message": "成功"})


# -- the notify ---------------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_a_notify_pays_once_however_often_it_comes(api, resources, wechatpay):
    opened = await prepaid(resources, amount=4321)
    no = opened["out_trade_no"]
    trade = wechatpay.pay(no)
    headers, body = wechatpay.payment_notification(no)
    first = await post_notify(api, headers, body)
    assert (first.status, first.json) == (200, {"code": "SUCCESS", "message": "成功"})
    again = await post_notify(api, headers, body)
    assert (again.status, again.json["code"]) == (200, "SUCCESS")
    row = await support.payment_row(resources, no)
    assert (row.status, row.paid_amount, row.transaction_id) == ("paid", 4321,
                                                                 trade["transaction_id"])
    assert row.paid_at is not None and abs(row.paid_at - utcnow()) < dt.timedelta(minutes=1)
    assert await support.paid_calls(opened["payable_id"]) == 1
    results = await support.results_of(resources, no)
    assert [r.outcome for r in results] == ["applied"]  # the retry is the same notification

    # Another notification (another id) of the same transaction: recorded, not applied again.
    headers, body = wechatpay.payment_notification(no)
    assert (await post_notify(api, headers, body)).status == 200
    assert [r.outcome for r in await support.results_of(resources, no)] == ["applied",
                                                                           "duplicate"]
    assert await support.paid_calls(opened["payable_id"]) == 1


@pytest.mark.gen_test(timeout=120)
async def test_twenty_concurrent_copies_pay_exactly_once(api, resources, wechatpay):
    opened = await prepaid(resources)
    no = opened["out_trade_no"]
    wechatpay.pay(no)
    same = wechatpay.payment_notification(no)
    copies = [same] * 10 + [wechatpay.payment_notification(no) for _ in range(10)]
    replies = await asyncio.gather(*[post_notify(api, h, b) for h, b in copies])
    assert [r.status for r in replies] == [200] * 20
    assert await support.paid_calls(opened["payable_id"]) == 1
    row = await support.payment_row(resources, no)
    assert (row.status, row.paid_amount) == ("paid", row.amount)
    outcomes = sorted(r.outcome for r in await support.results_of(resources, no))
    assert outcomes == ["applied"] + ["duplicate"] * 10  # 11 distinct notification ids


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("variant,status,message", [
    ("bad_signature", 401, "signature verification failed"),
    ("stale_timestamp", 401, "Wechatpay-Timestamp too far from our clock"),
    ("unknown_serial", 401, "unknown Wechatpay-Serial"),
    ("tampered_ciphertext", 401, "resource could not be decrypted"),
    ("wrong_apiv3_key", 401, "resource could not be decrypted"),
    ("missing_headers", 401, "malformed notify"),
    ("malformed", 401, "malformed notify"),
])
async def test_a_notify_that_cannot_be_verified_fails_and_changes_nothing(
        api, resources, wechatpay, variant, status, message):
    opened = await prepaid(resources)
    no = opened["out_trade_no"]
    wechatpay.pay(no)
    headers, body = wechatpay.payment_notification(no, variant=variant)
    reply = await post_notify(api, headers, body)
    assert (reply.status, reply.json) == (status, {"code": "FAIL", "message": message})
    row = await support.payment_row(resources, no)
    assert (row.status, row.paid_amount, row.transaction_id) == ("prepaid", 0, None)
    assert await support.results_of(resources, no) == []
    assert await support.paid_calls(opened["payable_id"]) == 0


@pytest.mark.gen_test(timeout=90)
async def test_a_notify_that_contradicts_our_records_fails_is_recorded_and_never_pays(
        api, resources, wechatpay):
    admin = await support.make_payer(resources, role="admin")
    opened = await prepaid(resources, amount=1000)
    no = opened["out_trade_no"]
    trade = wechatpay.pay(no)

    headers, body = wechatpay.payment_notification(no, variant="wrong_amount")
    reply = await post_notify(api, headers, body)
    assert reply.status == 409 and reply.json["code"] == "FAIL"
    assert "amount 1001 fen" in reply.json["message"]
    for field, value in (("mchid", "1900000999"), ("appid", "wx-someone-else")):
        headers, body = wechatpay.notification("TRANSACTION.SUCCESS", "支付成功", "transaction",
                                               {**trade, field: value})
        reply = await post_notify(api, headers, body)
        assert reply.status == 409 and field in reply.json["message"]
        assert (await post_notify(api, headers, body)).status == 409  # WeChat's retry: same
    unknown = {**trade, "out_trade_no": "T-NOT-OURS-1"}
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", "支付成功", "transaction",
                                           unknown)
    reply = await post_notify(api, headers, body)
    assert (reply.status, reply.json["code"]) == (404, "FAIL")

    row = await support.payment_row(resources, no)
    assert (row.status, row.paid_amount, row.transaction_id) == ("prepaid", 0, None)
    assert await support.paid_calls(opened["payable_id"]) == 0
    results = await support.results_of(resources, no)
    assert [r.outcome for r in results] == ["mismatch"] * 3
    listed = (await api.get("/v1/admin/payments/notifications?outcome=mismatch&limit=100",
                            token=admin.token)).ok()
    assert {i["out_trade_no"] for i in listed["items"]} >= {no, "T-NOT-OURS-1"}
    told = (await api.get("/v1/notifications?category=system", token=admin.token)).ok()
    assert sum(i["kind"] == "payment_mismatch" for i in told["items"]) >= 4  # once each

    # The genuine notify still pays.
    headers, body = wechatpay.payment_notification(no)
    assert (await post_notify(api, headers, body)).status == 200
    assert (await support.payment_row(resources, no)).status == "paid"
    assert await support.paid_calls(opened["payable_id"]) == 1


@pytest.mark.gen_test(timeout=120)
async def test_a_payment_the_payable_refuses_is_refunded_automatically(
        api, resources, wechatpay, celery_worker_process):
    from tests.fixtures_worker import wait_until

    opened = await prepaid(resources, amount=2500)
    no, payable_id = opened["out_trade_no"], opened["payable_id"]
    await support.refuse(payable_id)  # e.g. the order was cancelled while the payer paid
    wechatpay.pay(no)
    headers, body = wechatpay.payment_notification(no)
    assert (await post_notify(api, headers, body)).status == 200
    row = await support.payment_row(resources, no)
    assert row.status == "paid" and row.refund_reserved == 2500
    assert [r.outcome for r in await support.results_of(resources, no)] == [
        "refund_after_cancel"]
    refund_no = f"AUTO-{row.id}"
    refund = await support.refund_row(resources, refund_no)
    assert (refund.amount, refund.source_type, refund.source_id) == (2500, "payment", row.id)

    async def processing():
        found = await support.refund_row(resources, refund_no)
        return found.status == "processing" and found
    sent = await wait_until(processing, timeout=30, what="the worker sends the refund")
    assert sent.refund_id == wechatpay.refunds[refund_no]["refund_id"]
    headers, body = wechatpay.refund_notification(refund_no, "SUCCESS")
    assert (await post_notify(api, headers, body,
                              path="/v1/payments/wechat/refund-notify")).status == 200
    row = await support.payment_row(resources, no)
    assert (row.status, row.refunded_amount) == ("refunded", 2500)
    assert await support.refund_calls(refund_no) == {"success": 1}
    # A retry of the notify that caused it changes nothing.
    headers, body = wechatpay.payment_notification(no)
    assert (await post_notify(api, headers, body)).status == 200
    assert len(await support.refunds_of(resources, row.id)) == 1


@pytest.mark.gen_test(timeout=90)
async def test_a_notify_for_a_closed_payment_is_applied_and_refunded(resources, wechatpay):
    from pawhome.payments import notifies

    opened = await prepaid(resources, amount=3000)
    no, payable_id = opened["out_trade_no"], opened["payable_id"]
    wechatpay.pay(no)  # the payer paid just before the order was cancelled...
    await support.refuse(payable_id)
    # ... so WeChat refuses to close it, and the close job applies what the query finds.
    outcome = await jobs.close_payment(resources, support.PAYABLE, payable_id)
    assert outcome == "paid_meanwhile:refund_after_cancel"
    row = await support.payment_row(resources, no)
    assert (row.status, row.refund_reserved) == ("paid", 3000)
    headers, body = wechatpay.payment_notification(no)  # the notify comes late: nothing new
    assert (await notifies.handle_notification(resources, headers, body))[0] == 200
    assert await support.paid_calls(payable_id) == 1
    assert [r.outcome for r in await support.results_of(resources, no)] == [
        "refund_after_cancel", "duplicate"]


# -- missing notifies ---------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=90)
async def test_the_query_job_applies_a_payment_whose_notify_never_came(resources, wechatpay):
    paid, unpaid, closed = [await prepaid(resources) for _ in range(3)]
    wechatpay.pay(paid["out_trade_no"])
    with wechatpay.lock:
        wechatpay.transactions[closed["out_trade_no"]].update(trade_state="CLOSED")
    mine = [o["out_trade_no"] for o in (paid, unpaid, closed)]
    await jobs.query_unpaid_payments(resources, now=utcnow() + dt.timedelta(seconds=30))
    for no in mine:  # too early to ask about these
        assert (await support.payment_row(resources, no)).last_queried_at is None
    later = utcnow() + dt.timedelta(seconds=resources.settings.payment_query_after_seconds + 5)
    while await jobs.query_unpaid_payments(resources, now=later):
        pass  # a batch a run (other tests' payments are due too)
    row = await support.payment_row(resources, paid["out_trade_no"])
    assert row.status == "paid" and row.transaction_id
    assert await support.paid_calls(paid["payable_id"]) == 1
    assert [r.notification_id for r in await support.results_of(
        resources, paid["out_trade_no"])] == [f"query:{paid['out_trade_no']}"]
    assert (await support.payment_row(resources, unpaid["out_trade_no"])).trade_state == "NOTPAY"
    closed_row = await support.payment_row(resources, closed["out_trade_no"])
    assert (closed_row.status, closed_row.trade_state) == ("prepaid", "CLOSED")
    assert [r.outcome for r in await support.results_of(
        resources, closed["out_trade_no"])] == ["ignored"]
    # Queried just now: not again within the interval; the notify arriving later is a no-op.
    assert await jobs.query_unpaid_payments(resources, now=later) == 0
    headers, body = wechatpay.payment_notification(paid["out_trade_no"])
    from pawhome.payments import notifies
    assert (await notifies.handle_notification(resources, headers, body))[0] == 200
    assert await support.paid_calls(paid["payable_id"]) == 1


def test_the_registry_refuses_bad_or_conflicting_types():
    with pytest.raises(ValueError):
        payables.register_payable("Bad Type", on_paid=support._on_paid,
                                  on_refund_settled=support._on_refund_settled)

    async def other(session, payment):
        return True
    with pytest.raises(ValueError):
        payables.register_payable(support.PAYABLE, on_paid=other,
                                  on_refund_settled=support._on_refund_settled)
    payables.register_payable(support.PAYABLE, on_paid=support._on_paid,
                              on_refund_settled=support._on_refund_settled)  # same: a no-op
    with pytest.raises(LookupError):
        payables.payable("nobody")
    assert support.PAYABLE in payables.registered_types()


@pytest.mark.gen_test(timeout=30)
async def test_the_simulated_confirm_is_absent_with_the_real_provider(api, resources, wechatpay):
    payer = await support.make_payer(resources)
    opened = await support.prepare(resources, payer)
    reply = await api.post(f"/v1/payments/simulated/{opened['out_trade_no']}/confirm",
                           token=payer.token)
    reply.error(404)
    assert (await support.payment_row(resources, opened["out_trade_no"])).status == "prepaid"


def test_wechat_is_never_rate_limited_into_refusing_a_notify():
    from gateway.ratelimit import DEFAULT_RULES, rules_for

    for name in ("payments.notify", "payments.refund_notify"):
        rules = rules_for(name)
        assert rules and all(r.scope == "ip" for r in rules)  # WeChat has no token
        assert min(r.limit / r.window for r in rules) >= 10 * max(
            r.limit / r.window for r in DEFAULT_RULES if r.scope == "ip")
