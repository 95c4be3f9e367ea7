"""Refunds and closing: refund_later never refunds more than was paid (also when twenty race),
the worker asks WeChat once per out_refund_no, the refund notifies (SUCCESS, ABNORMAL,
CLOSED) settle a refund once and tell its payable, refusals and outages end well, stuck
refunds are found by the beat job, and a cancelled payable's transaction is closed."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from models.base import utcnow
from pawhome.payments import jobs, notifies, payments
from pawhome.platform.errors import (
    Conflict,
    RefundNotAllowed,
    ValidationFailed,
    WeChatPayUnavailable,
)
from tests import payments_support as support
from tests.fixtures_worker import wait_until

REFUND_NOTIFY = "/v1/payments/wechat/refund-notify"


async def paid_payment(resources, wechatpay, amount: int = 10000) -> dict:
    """A testpay payable paid through a genuine notify."""
    payer = await support.make_payer(resources)
    opened = await support.prepare(resources, payer, amount=amount)
    wechatpay.pay(opened["out_trade_no"])
    headers, body = wechatpay.payment_notification(opened["out_trade_no"])
    assert (await notifies.handle_notification(resources, headers, body))[0] == 200
    row = await support.payment_row(resources, opened["out_trade_no"])
    return {**opened, "payment_id": row.id, "payer": payer}


def new_refund_no() -> str:
    return "R" + support.new_trade_no()[1:]


async def refund_status(resources, out_refund_no: str, status: str):
    async def check():
        row = await support.refund_row(resources, out_refund_no)
        return row is not None and row.status == status and row
    return await wait_until(check, timeout=30, what=f"refund {out_refund_no} {status}")


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("status", ["SUCCESS", "CLOSED", "ABNORMAL"])
async def test_a_refund_is_sent_by_the_worker_and_settled_once_by_its_notify(
        api, resources, wechatpay, celery_worker_process, status):
    paid = await paid_payment(resources, wechatpay, amount=10000)
    no = new_refund_no()
    refund = await support.refund_later(resources, paid["payable_id"], no, 3000)
    assert refund.status == "pending"
    assert (await support.payment_row(resources, paid["out_trade_no"])).refund_reserved == 3000
    processing = await refund_status(resources, no, "processing")
    sent = wechatpay.requests_to("/v3/refund/domestic/refunds")
    assert [r.body["out_refund_no"] for r in sent] == [no]
    assert sent[0].body["amount"] == {"refund": 3000, "total": 10000, "currency": "CNY"}
    assert sent[0].body["notify_url"].endswith(REFUND_NOTIFY)
    assert processing.refund_id == wechatpay.refunds[no]["refund_id"]

    headers, body = wechatpay.refund_notification(no, status)
    for _ in range(2):  # WeChat's retry of the same notify
        reply = await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)
        assert (reply.status, reply.json["code"]) == (200, "SUCCESS")
    settled = await support.refund_row(resources, no)
    assert settled.status == status.lower()
    assert await support.refund_calls(no) == {status.lower(): 1}
    row = await support.payment_row(resources, paid["out_trade_no"])
    expected = {"SUCCESS": (3000, 3000, "paid"), "CLOSED": (0, 0, "paid"),
                "ABNORMAL": (3000, 0, "paid")}[status]  # (reserved, refunded, status)
    assert (row.refund_reserved, row.refunded_amount, row.status) == expected
    if status == "SUCCESS":
        assert settled.succeeded_at is not None
    if status == "ABNORMAL":
        # WeChat's abnormal refunds are retried by the merchant; it may still succeed.
        headers, body = wechatpay.refund_notification(no, "SUCCESS")
        assert (await api.request("POST", REFUND_NOTIFY, headers=headers,
                                  body=body)).status == 200
        assert (await support.refund_row(resources, no)).status == "success"
        assert await support.refund_calls(no) == {"abnormal": 1, "success": 1}
        row = await support.payment_row(resources, paid["out_trade_no"])
        assert (row.refund_reserved, row.refunded_amount) == (3000, 3000)


@pytest.mark.gen_test(timeout=120)
async def test_refunds_add_up_to_the_whole_payment_and_no_further(api, resources, wechatpay,
                                                                  celery_worker_process):
    paid = await paid_payment(resources, wechatpay, amount=5000)
    nos = [new_refund_no() for _ in range(2)]
    await support.refund_later(resources, paid["payable_id"], nos[0], 2000)
    await support.refund_later(resources, paid["payable_id"], nos[1], 3000)
    with pytest.raises(RefundNotAllowed) as caught:
        await support.refund_later(resources, paid["payable_id"], new_refund_no(), 1)
    assert caught.value.data == {"refundable": 0}
    for no in nos:
        await refund_status(resources, no, "processing")
        headers, body = wechatpay.refund_notification(no, "SUCCESS")
        assert (await api.request("POST", REFUND_NOTIFY, headers=headers,
                                  body=body)).status == 200
    row = await support.payment_row(resources, paid["out_trade_no"])
    assert (row.status, row.refunded_amount, row.refund_reserved) == ("refunded", 5000, 5000)


@pytest.mark.gen_test(timeout=120)
async def test_twenty_concurrent_refunds_never_exceed_what_was_paid(resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=100)
    nos = [new_refund_no() for _ in range(20)]
    results = await asyncio.gather(
        *[support.refund_later(resources, paid["payable_id"], no, 30) for no in nos],
        return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 3 and all(isinstance(r, RefundNotAllowed) for r in refused)
    row = await support.payment_row(resources, paid["out_trade_no"])
    assert row.refund_reserved == 90
    assert sum(r.amount for r in await support.refunds_of(resources, row.id)) == 90


@pytest.mark.gen_test(timeout=60)
async def test_the_same_refund_number_twice_is_the_same_refund(resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=1000)
    no = new_refund_no()
    first = await support.refund_later(resources, paid["payable_id"], no, 400)
    again = await support.refund_later(resources, paid["payable_id"], no, 400)
    assert again.id == first.id
    twice = await asyncio.gather(*[support.refund_later(resources, paid["payable_id"], no, 400)
                                   for _ in range(5)])
    assert {r.id for r in twice} == {first.id}
    assert (await support.payment_row(resources, paid["out_trade_no"])).refund_reserved == 400
    with pytest.raises(Conflict):
        await support.refund_later(resources, paid["payable_id"], no, 500)


@pytest.mark.gen_test(timeout=60)
async def test_refunds_of_nothing_or_of_nothing_are_refused(resources, wechatpay):
    payer = await support.make_payer(resources)
    unpaid = await support.prepare(resources, payer)
    with pytest.raises(RefundNotAllowed):
        await support.refund_later(resources, unpaid["payable_id"], new_refund_no(), 100)
    with pytest.raises(RefundNotAllowed):
        await support.refund_later(resources, support.new_payable_id(), new_refund_no(), 100)
    paid = await paid_payment(resources, wechatpay, amount=1000)
    for amount in (0, -5):
        with pytest.raises(ValidationFailed):
            await support.refund_later(resources, paid["payable_id"], new_refund_no(), amount)
    with pytest.raises(RefundNotAllowed):
        await support.refund_later(resources, paid["payable_id"], new_refund_no(), 1001)


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_wechat_refuses_ends_abnormal_and_frees_its_money(resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=1000)
    no = new_refund_no()
    refund = await support.refund_later(resources, paid["payable_id"], no, 600)
    wechatpay.fail_next("/v3/refund/domestic/refunds", 403,
                        {"code": "NOT_ENOUGH", "message": "基本账户余额不足"})
    assert await jobs.send_refund(resources, refund.id) == "abnormal"
    row = await support.refund_row(resources, no)
    assert row.status == "abnormal" and "NOT_ENOUGH" in row.last_error and row.refund_id == ""
    assert await support.refund_calls(no) == {"abnormal": 1}
    assert (await support.payment_row(resources, paid["out_trade_no"])).refund_reserved == 0
    assert await jobs.send_refund(resources, refund.id) == "abnormal"  # a redelivery: no call
    assert len(wechatpay.requests_to("/v3/refund/domestic/refunds")) == 1
    again = await support.refund_later(resources, paid["payable_id"], new_refund_no(), 1000)
    assert again.amount == 1000  # the whole payment can be refunded again


@pytest.mark.gen_test(timeout=60)
async def test_wechat_down_leaves_the_refund_pending_for_the_retry(resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=1000)
    no = new_refund_no()
    refund = await support.refund_later(resources, paid["payable_id"], no, 100)
    wechatpay.fail_next("/v3/refund/domestic/refunds", 500)
    with pytest.raises(WeChatPayUnavailable):
        await jobs.send_refund(resources, refund.id)
    row = await support.refund_row(resources, no)
    assert (row.status, row.attempts) == ("pending", 1) and "SYSTEM_ERROR" in row.last_error
    assert await jobs.send_refund(resources, refund.id) == "PROCESSING"
    assert await jobs.send_refund(resources, refund.id) == "processing"  # no second call
    row = await support.refund_row(resources, no)
    assert (row.status, row.attempts, row.last_error) == ("processing", 2, "")
    assert len(wechatpay.refunds) == 1


@pytest.mark.gen_test(timeout=90)
async def test_the_beat_job_settles_refunds_whose_notify_never_came(resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=1000)
    sent, lost = new_refund_no(), new_refund_no()
    refund = await support.refund_later(resources, paid["payable_id"], sent, 300)
    await jobs.send_refund(resources, refund.id)
    wechatpay.settle_refund(sent, "SUCCESS")  # WeChat paid out; its notify is lost
    await support.refund_later(resources, paid["payable_id"], lost, 200)  # its task is lost
    later = utcnow() + dt.timedelta(seconds=resources.settings.payment_refund_query_after_seconds
                                    + 5)
    while await jobs.query_stuck_refunds(resources, now=later):
        pass  # a batch a run
    assert (await support.refund_row(resources, sent)).status == "success"
    assert await support.refund_calls(sent) == {"success": 1}
    assert (await support.refund_row(resources, lost)).status == "processing"
    assert lost in wechatpay.refunds
    row = await support.payment_row(resources, paid["out_trade_no"])
    assert (row.refunded_amount, row.refund_reserved) == (300, 500)
    results = await support.results_of(resources, paid["out_trade_no"])
    assert f"query:{sent}:SUCCESS" in [r.notification_id for r in results]


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_notify_that_does_not_match_fails_and_changes_nothing(
        api, resources, wechatpay):
    paid = await paid_payment(resources, wechatpay, amount=1000)
    no = new_refund_no()
    refund = await support.refund_later(resources, paid["payable_id"], no, 300)
    await jobs.send_refund(resources, refund.id)
    settled = wechatpay.settle_refund(no, "SUCCESS")
    resource = {key: settled[key] for key in ("mchid", "out_trade_no", "transaction_id",
                                              "out_refund_no", "refund_id", "success_time")}
    resource.update(refund_status="SUCCESS", amount={**settled["amount"], "refund": 301})
    headers, body = wechatpay.notification("REFUND.SUCCESS", "退款成功", "refund", resource)
    reply = await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)
    assert (reply.status, reply.json["code"]) == (409, "FAIL")
    headers, body = wechatpay.notification("REFUND.SUCCESS", "退款成功", "refund",
                                           {**resource, "out_refund_no": "R-NOT-OURS"})
    assert (await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)).status == 404
    headers, body = wechatpay.refund_notification(no, "SUCCESS", variant="bad_signature")
    assert (await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)).status == 401
    # None of the three changed the refund. (A test worker running in this process may have
    # sent the queued refund itself meanwhile: WeChat's reply, for the true 300, settles it.)
    row = await support.refund_row(resources, no)
    if row.status == "success":
        assert await support.refund_calls(no) == {"success": 1}
        assert row.amount == 300
    else:
        assert row.status == "processing"
        assert await support.refund_calls(no) == {}


@pytest.mark.gen_test(timeout=90)
async def test_close_later_closes_the_payment_here_and_at_wechat(api, resources, wechatpay,
                                                                 celery_worker_process):
    payer = await support.make_payer(resources)
    opened = await support.prepare(resources, payer)
    async with resources.db.session() as session, session.begin():
        payments.close_later(session, payable_type=support.PAYABLE,
                             payable_id=opened["payable_id"])

    async def closed_there():
        row = await support.payment_row(resources, opened["out_trade_no"])
        return row.status == "closed" and row.trade_state == "CLOSED" and row
    await wait_until(closed_there, timeout=30, what="the worker closes the payment")
    assert wechatpay.transaction(opened["out_trade_no"])["trade_state"] == "CLOSED"
    # Twice is once; a payable that never opened a payment is nothing to close.
    assert await jobs.close_payment(resources, support.PAYABLE, opened["payable_id"]) == "closed"
    assert len(wechatpay.requests_to(
        f"/v3/pay/transactions/out-trade-no/{opened['out_trade_no']}/close")) == 1
    assert await jobs.close_payment(resources, support.PAYABLE,
                                    support.new_payable_id()) == "none"
