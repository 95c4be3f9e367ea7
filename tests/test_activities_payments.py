"""Paid activities against the fake WeChat Pay server and a real worker: a cash registration
holds its seat pending payment and is confirmed by the verified notify; unpaid past its
deadline it frees the seat for the waitlist (and a late payment is refunded in full);
cancelling refunds through the payments refund flow; the organiser cancelling refunds and
tells everyone, safely twice; reminders go out once before the start."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from models.activities import ActivityRegistration
from models.base import utcnow
from models.payments import PaymentRefund
from models.platform import OutboxMessage
from pawhome.activities import jobs, seats
from pawhome.messaging import subscribe_messages
from tests import payments_support as support
from tests.activities_support import (
    activity_notifications,
    activity_row,
    key,
    later,
    organiser,
    published,
    register,
    registrations_of,
)
from tests.mall_support import make_member
from tests.points_support import give_points
from tests.test_booking_deposits import NOTIFY, settle_refund

PRICE = 2500


async def pay_and_notify(api, wechatpay, user, registration_id: int) -> dict:
    params = (await api.post(f"/v1/activity-registrations/{registration_id}/pay",
                             token=user.token)).ok()
    wechatpay.pay(params["out_trade_no"])
    headers, body = wechatpay.payment_notification(params["out_trade_no"])
    assert (await api.request("POST", NOTIFY, headers=headers, body=body)).status == 200
    return params


async def refunds_of_activity(resources, registration_ids: list[int]) -> list[PaymentRefund]:
    async with resources.db.session() as session:
        return list((await session.execute(select(PaymentRefund).where(
            PaymentRefund.source_type == seats.REFUND_SOURCE,
            PaymentRefund.source_id.in_(registration_ids)))).scalars())


@pytest.mark.gen_test(timeout=120)
async def test_a_cash_registration_is_confirmed_by_payment_and_refunded_on_cancel(
        api, resources, wechatpay, celery_worker_process):
    activity = await published(api, await organiser(resources), price_type="cash",
                               price=PRICE)
    user = await make_member(resources)
    made = (await register(api, user, activity["id"])).ok(201)
    assert (made["status"], made["payment_status"], made["amount"]) == (
        "pending_payment", "unpaid", PRICE)
    assert made["pay_deadline"] is not None
    assert (await activity_row(resources, activity["id"])).seats_taken == 1
    params = await pay_and_notify(api, wechatpay, user, made["id"])
    assert params["out_trade_no"] == seats.trade_no(made["id"])
    assert wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body["amount"]["total"] \
        == PRICE
    paid = (await api.get(f"/v1/activity-registrations/{made['id']}", token=user.token)).ok()
    assert (paid["status"], paid["payment_status"]) == ("confirmed", "paid")
    (await api.post(f"/v1/activity-registrations/{made['id']}/pay",
                    token=user.token)).error(409, code=40996)

    done = (await api.post(f"/v1/activity-registrations/{made['id']}/cancel", json={},
                           token=user.token, headers=key())).ok()
    assert (done["status"], done["payment_status"]) == ("cancelled", "refunding")
    refund = await support.refund_row(resources, seats.refund_no(made["id"]))
    assert (refund.amount, refund.source_id) == (PRICE, made["id"])
    await settle_refund(api, resources, wechatpay, seats.refund_no(made["id"]))
    after = (await api.get(f"/v1/activity-registrations/{made['id']}", token=user.token)).ok()
    assert after["payment_status"] == "refunded"
    assert [n.kind for n in await activity_notifications(resources, user.user_id)] == [
        "refunded"]
    assert (await activity_row(resources, activity["id"])).seats_taken == 0


@pytest.mark.gen_test(timeout=120)
async def test_an_unpaid_seat_is_freed_at_its_deadline_for_the_waitlist_and_a_late_payment_refunded(
        api, resources, wechatpay, celery_worker_process):
    activity = await published(api, await organiser(resources), price_type="cash",
                               price=PRICE, capacity=1, waitlist_enabled=True)
    slow, next_ = await make_member(resources), await make_member(resources)
    held = (await register(api, slow, activity["id"])).ok(201)
    waiting = (await register(api, next_, activity["id"])).ok(201)
    assert (held["status"], waiting["status"]) == ("pending_payment", "waitlisted")
    params = (await api.post(f"/v1/activity-registrations/{held['id']}/pay",
                             token=slow.token)).ok()
    async with resources.db.session() as session, session.begin():
        await session.execute(update(ActivityRegistration).where(
            ActivityRegistration.id == held["id"]).values(
                pay_deadline=utcnow() - dt.timedelta(seconds=1)))
    assert await jobs.expire_unpaid(resources) >= 1
    assert await jobs.expire_registration(resources, held["id"]) is False  # once
    gone = (await api.get(f"/v1/activity-registrations/{held['id']}", token=slow.token)).ok()
    assert (gone["status"], gone["payment_status"]) == ("expired", "closed")
    promoted = (await api.get(f"/v1/activity-registrations/{waiting['id']}",
                              token=next_.token)).ok()
    assert promoted["status"] == "pending_payment" and promoted["pay_deadline"]
    row = await activity_row(resources, activity["id"])
    assert (row.seats_taken, row.waitlisted) == (1, 0)
    assert [n.kind for n in await activity_notifications(resources, next_.user_id)] == [
        "waitlist_promoted"]
    # The slow payer paid just before the deadline; the notify comes late: refunded.
    wechatpay.pay(params["out_trade_no"])
    headers, body = wechatpay.payment_notification(params["out_trade_no"])
    assert (await api.request("POST", NOTIFY, headers=headers, body=body)).status == 200
    outcomes = [r.outcome for r in await support.results_of(resources, params["out_trade_no"])]
    assert outcomes[0] == "refund_after_cancel"
    still = (await api.get(f"/v1/activity-registrations/{held['id']}", token=slow.token)).ok()
    assert still["status"] == "expired"
    await pay_and_notify(api, wechatpay, next_, waiting["id"])
    assert (await api.get(f"/v1/activity-registrations/{waiting['id']}",
                          token=next_.token)).ok()["status"] == "confirmed"


@pytest.mark.gen_test(timeout=150)
async def test_the_organiser_cancelling_tells_and_pays_back_everyone_and_is_safe_to_retry(
        api, resources, wechatpay, celery_worker_process):
    merchant = await organiser(resources)
    cash = await published(api, merchant, price_type="cash", price=PRICE, capacity=2,
                           waitlist_enabled=True)
    payer, unpaid, waiting = [await make_member(resources) for _ in range(3)]
    paid_reg = (await register(api, payer, cash["id"])).ok(201)
    await pay_and_notify(api, wechatpay, payer, paid_reg["id"])
    unpaid_reg = (await register(api, unpaid, cash["id"])).ok(201)
    waiting_reg = (await register(api, waiting, cash["id"])).ok(201)
    assert waiting_reg["status"] == "waitlisted"

    done = (await api.post(f"/v1/merchant/activities/{cash['id']}/cancel",
                           json={"reason": "暴雨预警"}, token=merchant.token,
                           headers=key())).ok()
    assert done["status"] == "cancelled" and done["cancel_reason"] == "暴雨预警"
    assert done["registrations_by_status"]["cancelled"] == 3
    views = {u.user_id: (await api.get(f"/v1/activity-registrations/{r['id']}",
                                       token=u.token)).ok()
             for u, r in ((payer, paid_reg), (unpaid, unpaid_reg), (waiting, waiting_reg))}
    assert [(v["status"], v["payment_status"]) for v in views.values()] == [
        ("cancelled", "refunding"), ("cancelled", "closed"), ("cancelled", "none")]
    for person in (payer, unpaid, waiting):
        assert [n.kind for n in await activity_notifications(resources, person.user_id)] == [
            "activity_cancelled"]
    row = await activity_row(resources, cash["id"])
    assert (row.seats_taken, row.waitlisted) == (0, 0)

    # Again (a retry with another key, and the worker's settle task): nothing more.
    (await api.post(f"/v1/merchant/activities/{cash['id']}/cancel", json={},
                    token=merchant.token, headers=key())).ok()
    ids = [paid_reg["id"], unpaid_reg["id"], waiting_reg["id"]]
    assert [r.amount for r in await refunds_of_activity(resources, ids)] == [PRICE]
    await settle_refund(api, resources, wechatpay, seats.refund_no(paid_reg["id"]))
    kinds = [n.kind for n in await activity_notifications(resources, payer.user_id)]
    assert kinds == ["activity_cancelled", "refunded"]

    # Points come back through the ledger.
    points = await published(api, merchant, price_type="points", price=80)
    spender = await make_member(resources)
    await give_points(resources, spender.user_id, 100)
    (await register(api, spender, points["id"])).ok(201)
    assert (await api.get("/v1/points", token=spender.token)).ok()["balance"] == 20
    (await api.post(f"/v1/merchant/activities/{points['id']}/cancel", json={},
                    token=merchant.token, headers=key())).ok()
    assert (await api.get("/v1/points", token=spender.token)).ok()["balance"] == 100


@pytest.mark.gen_test(timeout=60)
async def test_reminders_go_out_once_before_the_start(api, resources):
    activity = await published(api, await organiser(resources), start_at=later(hours=20),
                               end_at=later(hours=22))
    soon = await published(api, await organiser(resources), start_at=later(hours=1),
                           end_at=later(hours=2))
    user, other = await make_member(resources), await make_member(resources)
    first = (await register(api, user, activity["id"])).ok(201)
    (await register(api, other, soon["id"])).ok(201)
    leaving = await make_member(resources)
    gone = (await register(api, leaving, activity["id"])).ok(201)
    (await api.post(f"/v1/activity-registrations/{gone['id']}/cancel", json={},
                    token=leaving.token, headers=key())).ok()
    await jobs.send_reminders(resources)
    await jobs.send_reminders(resources)  # a second run (or a second worker) sends nothing
    kinds = [n.kind for n in await activity_notifications(resources, user.user_id)]
    assert kinds == ["reminder_24h"]
    told = (await activity_notifications(resources, user.user_id))[0]
    assert first["check_in_code"] in told.payload["text"]
    # An hour before: only the nearer reminder, never the day-before one as well.
    assert [n.kind for n in await activity_notifications(resources, other.user_id)] == [
        "reminder_2h"]
    assert await activity_notifications(resources, leaving.user_id) == []
    # Two hours before the first one's start, its second reminder goes out, once.
    await jobs.send_reminders(resources, now=utcnow() + dt.timedelta(hours=18, minutes=30))
    await jobs.send_reminders(resources, now=utcnow() + dt.timedelta(hours=18, minutes=31))
    kinds = [n.kind for n in await activity_notifications(resources, user.user_id)]
    assert kinds == ["reminder_24h", "reminder_2h"]
    # Each reminder also queued its WeChat subscribe message (sent if they stay offline).
    async with resources.db.session() as session:
        pushes = [m.payload["args"] for m in (await session.execute(select(OutboxMessage).where(
            OutboxMessage.name == subscribe_messages.TASK_NAME))).scalars()]
    assert pushes.count([user.user_id, "notification:activity"]) == 2
    full = await published(api, await organiser(resources), start_at=later(hours=5),
                           end_at=later(hours=6), capacity=1, waitlist_enabled=True)
    (await register(api, await make_member(resources), full["id"])).ok(201)
    late = (await register(api, await make_member(resources), full["id"])).ok(201)
    assert late["status"] == "waitlisted"
    assert await jobs.finish_past(resources, now=utcnow() + dt.timedelta(hours=23)) >= 3
    assert (await activity_row(resources, activity["id"])).status == "finished"
    row = await activity_row(resources, full["id"])
    assert (row.status, row.seats_taken, row.waitlisted) == ("finished", 1, 0)
    assert [r.status for r in await registrations_of(resources, full["id"])] == [
        "confirmed", "cancelled"]
    async with resources.db.session() as session:
        count = (await session.execute(select(func.count()).select_from(
            ActivityRegistration).where(ActivityRegistration.activity_id == soon["id"])
        )).scalar_one()
    assert count == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_later_start_sends_the_reminders_again_before_the_new_one(api, resources):
    merchant = await organiser(resources)
    activity = await published(api, merchant, start_at=later(hours=20), end_at=later(hours=22))
    user = await make_member(resources)
    (await register(api, user, activity["id"])).ok(201)
    await jobs.send_reminders(resources)
    (await api.request("PATCH", f"/v1/merchant/activities/{activity['id']}",
                       json={"start_at": later(days=3), "end_at": later(days=3, hours=2)},
                       token=merchant.token)).ok()
    await jobs.send_reminders(resources)  # not due for the new start
    await jobs.send_reminders(resources, now=utcnow() + dt.timedelta(days=2, hours=1))
    kinds = [n.kind for n in await activity_notifications(resources, user.user_id)]
    assert kinds == ["reminder_24h", "activity_changed", "reminder_24h"]
