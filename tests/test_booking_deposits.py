"""Booking deposits through the payments module, against the fake WeChat Pay server: a hold of
a service with a deposit is booked by paying it (the verified notify books it, once), not by
confirming; a hold gone before the payment is refunded in full; cancelling refunds the
deposit, a no-show keeps it; services without a deposit book as before."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, update

from models.base import utcnow
from models.booking import Appointment, AppointmentHold
from pawhome.booking import deposits, holds
from tests import payments_support as support
from tests.booking_support import at, hold, make_provider, pet_owner, tomorrow

NOTIFY = "/v1/payments/wechat/notify"
REFUND_NOTIFY = "/v1/payments/wechat/refund-notify"
DEPOSIT = 3000


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def deposit_setup(api, resources, **service):
    setup = await make_provider(api, resources, service={"deposit": DEPOSIT, **service})
    user, pet = await pet_owner(resources)
    return setup, user, pet


async def pay(api, user, hold_id: int, remark: str = ""):
    return await api.post(f"/v1/appointments/holds/{hold_id}/pay", json={"remark": remark},
                          token=user.token)


async def notify(api, wechatpay, out_trade_no: str):
    headers, body = wechatpay.payment_notification(out_trade_no)
    return await api.request("POST", NOTIFY, headers=headers, body=body)


async def appointments_of_hold(resources, hold_id: int) -> list[Appointment]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Appointment).where(
            Appointment.deposit_hold_id == hold_id))).scalars())


async def paid_and_booked(api, resources, wechatpay, setup, user, pet, clock="10:00",
                          day=None):
    """Hold, pay, notify: the appointment the deposit booked."""
    held = (await hold(api, user, pet, setup["service"]["id"],
                       at(day or tomorrow(), clock))).ok(201)
    params = (await pay(api, user, held["id"])).ok()
    wechatpay.pay(params["out_trade_no"])
    assert (await notify(api, wechatpay, params["out_trade_no"])).status == 200
    made = (await api.post("/v1/appointments", json={"hold_id": held["id"]},
                           token=user.token, headers=key())).ok(201)
    return made, params


@pytest.mark.gen_test(timeout=90)
async def test_paying_the_deposit_books_the_hold_and_confirm_then_returns_it(
        api, resources, wechatpay):
    setup, user, pet = await deposit_setup(api, resources)
    assert setup["service"]["deposit"] == DEPOSIT
    held = (await hold(api, user, pet, setup["service"]["id"], at(tomorrow(), "10:00"))).ok(201)
    assert held["deposit"] == DEPOSIT
    # Confirming before paying is refused, with a clear code.
    (await api.post("/v1/appointments", json={"hold_id": held["id"]}, token=user.token,
                    headers=key())).error(409, code=40990)
    params = (await pay(api, user, held["id"], remark="怕水")).ok()
    assert params["out_trade_no"] == deposits.trade_no(held["id"])
    assert set(params) >= {"appId", "timeStamp", "nonceStr", "package", "paySign"}
    sent = wechatpay.requests_to("/v3/pay/transactions/jsapi")[-1].body
    assert sent["amount"]["total"] == DEPOSIT
    again = (await pay(api, user, held["id"], remark="怕水")).ok()
    assert again["package"] == params["package"]  # the live prepay, reused
    assert len(wechatpay.requests_to("/v3/pay/transactions/jsapi")) == 1
    row = await support.payment_row(resources, params["out_trade_no"])
    assert (row.payable_type, row.payable_id, row.amount) == ("appt_deposit", held["id"],
                                                              DEPOSIT)
    async with resources.db.session() as session:
        expires = (await session.get(AppointmentHold, held["id"])).expires_at
    assert row.time_expire == expires  # payable until the hold expires

    wechatpay.pay(params["out_trade_no"])
    assert (await notify(api, wechatpay, params["out_trade_no"])).status == 200
    made = (await api.post("/v1/appointments", json={"hold_id": held["id"]},
                           token=user.token, headers=key())).ok(201)
    assert made["status"] == "confirmed" and made["remark"] == "怕水"
    assert (made["price"], made["deposit"], made["deposit_status"], made["due_at_store"]) == (
        8800, DEPOSIT, "paid", 8800 - DEPOSIT)
    detail = (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()
    assert [e["action"] for e in detail["timeline"]] == ["book"]
    # Paying again: booked already.
    (await pay(api, user, held["id"])).error(409, code=40991)


@pytest.mark.gen_test(timeout=90)
async def test_paying_is_refused_for_others_holds_dead_holds_and_services_without_deposit(
        api, resources, wechatpay):
    setup, user, pet = await deposit_setup(api, resources)
    stranger, _ = await pet_owner(resources)
    held = (await hold(api, user, pet, setup["service"]["id"], at(tomorrow(), "11:00"))).ok(201)
    (await pay(api, stranger, held["id"])).error(404)
    (await pay(api, user, 10**12)).error(404)
    (await api.post(f"/v1/appointments/holds/{held['id']}/pay", json={"amount": 1},
                    token=user.token)).error(422)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(AppointmentHold).where(
            AppointmentHold.id == held["id"]).values(expires_at=utcnow() - dt.timedelta(
                seconds=1)))
    (await pay(api, user, held["id"])).error(409, code=40982)
    assert wechatpay.requests_to("/v3/pay/transactions/jsapi") == []

    free = await make_provider(api, resources)
    other_user, other_pet = await pet_owner(resources)
    plain = (await hold(api, other_user, other_pet, free["service"]["id"],
                        at(tomorrow(), "11:00"))).ok(201)
    assert plain["deposit"] == 0
    (await pay(api, other_user, plain["id"])).error(422, code=42284)
    made = (await api.post("/v1/appointments", json={"hold_id": plain["id"]},
                           token=other_user.token, headers=key())).ok(201)
    assert (made["deposit"], made["deposit_status"], made["due_at_store"]) == (0, "none", 8800)


@pytest.mark.gen_test(timeout=90)
async def test_the_deposit_is_at_most_the_price(api, resources):
    setup = await make_provider(api, resources)
    merchant, pid = setup["merchant"], setup["provider"]["id"]
    (await api.post(f"/v1/merchant/providers/{pid}/services", json={
        "name": "洗澡", "kind": "grooming", "price": 1000, "deposit": 1001},
        token=merchant.token)).error(422, code=42285, field="deposit")
    (await api.post(f"/v1/merchant/providers/{pid}/services", json={
        "name": "洗澡", "kind": "grooming", "price": 1000, "deposit": -1},
        token=merchant.token)).error(422, field="deposit")
    sid = setup["service"]["id"]
    changed = (await api.request("PATCH", f"/v1/merchant/services/{sid}",
                                 json={"deposit": 8800}, token=merchant.token)).ok()
    assert changed["deposit"] == 8800
    (await api.request("PATCH", f"/v1/merchant/services/{sid}", json={"price": 8000},
                     token=merchant.token)).error(422, code=42285, field="deposit")
    page = (await api.get(f"/v1/providers/{pid}")).ok()
    assert [s["deposit"] for s in page["services"]] == [8800]


@pytest.mark.gen_test(timeout=120)
async def test_paying_twice_at_once_and_a_notify_twice_or_concurrently_book_once(
        api, resources, wechatpay):
    setup, user, pet = await deposit_setup(api, resources)
    held = (await hold(api, user, pet, setup["service"]["id"], at(tomorrow(), "12:00"))).ok(201)
    replies = await asyncio.gather(*[pay(api, user, held["id"]) for _ in range(5)])
    params = replies[0].ok()
    assert {r.ok()["package"] for r in replies} == {params["package"]}  # one payment
    no = params["out_trade_no"]
    wechatpay.pay(no)
    same = wechatpay.payment_notification(no)
    copies = [same] * 5 + [wechatpay.payment_notification(no) for _ in range(5)]
    replies = await asyncio.gather(*[api.request("POST", NOTIFY, headers=h, body=b)
                                     for h, b in copies])
    assert [r.status for r in replies] == [200] * 10
    assert len(await appointments_of_hold(resources, held["id"])) == 1
    outcomes = sorted(r.outcome for r in await support.results_of(resources, no))
    assert outcomes == ["applied"] + ["duplicate"] * 5


@pytest.mark.gen_test(timeout=120)
async def test_a_payment_for_a_hold_gone_meanwhile_is_refunded_in_full(
        api, resources, wechatpay, celery_worker_process):
    from tests.fixtures_worker import wait_until

    setup, user, pet = await deposit_setup(api, resources)
    sid = setup["service"]["id"]
    start = at(tomorrow(), "13:00")
    held = (await hold(api, user, pet, sid, start)).ok(201)
    params = (await pay(api, user, held["id"])).ok()
    no = params["out_trade_no"]
    # The hold expires and is released; someone else takes the time.
    async with resources.db.session() as session, session.begin():
        await session.execute(update(AppointmentHold).where(
            AppointmentHold.id == held["id"]).values(expires_at=utcnow() - dt.timedelta(
                seconds=1)))
    assert await holds.release_expired_holds(resources) >= 1
    other, other_pet = await pet_owner(resources)
    (await hold(api, other, other_pet, sid, start)).ok(201)
    wechatpay.pay(no)  # paid just before the expiry; the notify comes late
    assert (await notify(api, wechatpay, no)).status == 200
    assert await appointments_of_hold(resources, held["id"]) == []
    row = await support.payment_row(resources, no)
    assert (row.status, row.refund_reserved) == ("paid", DEPOSIT)
    # The expiry also queued the payment's close, which may find it paid and apply it
    # first: either way it is applied once, as refused.
    outcomes = [r.outcome for r in await support.results_of(resources, no)]
    assert outcomes[0] == "refund_after_cancel" and set(outcomes[1:]) <= {"duplicate"}
    refund_no = f"AUTO-{row.id}"
    refund = await support.refund_row(resources, refund_no)
    assert (refund.amount, refund.source_type) == (DEPOSIT, "payment")
    (await api.post("/v1/appointments", json={"hold_id": held["id"]}, token=user.token,
                    headers=key())).error(409, code=40982)

    async def sent():
        found = await support.refund_row(resources, refund_no)
        return found.status == "processing" and found
    await wait_until(sent, timeout=30, what="the worker sends the refund")
    headers, body = wechatpay.refund_notification(refund_no, "SUCCESS")
    assert (await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)).status == 200
    row = await support.payment_row(resources, no)
    assert (row.status, row.refunded_amount) == ("refunded", DEPOSIT)


@pytest.mark.gen_test(timeout=90)
async def test_a_late_payment_books_an_expired_hold_whose_time_is_still_its_own(
        api, resources, wechatpay):
    setup, user, pet = await deposit_setup(api, resources)
    held = (await hold(api, user, pet, setup["service"]["id"], at(tomorrow(), "16:00"))).ok(201)
    params = (await pay(api, user, held["id"])).ok()
    async with resources.db.session() as session, session.begin():
        await session.execute(update(AppointmentHold).where(
            AppointmentHold.id == held["id"]).values(expires_at=utcnow() - dt.timedelta(
                seconds=1)))
    wechatpay.pay(params["out_trade_no"])
    assert (await notify(api, wechatpay, params["out_trade_no"])).status == 200
    [made] = await appointments_of_hold(resources, held["id"])
    assert (made.status, made.deposit, made.deposit_status) == ("confirmed", DEPOSIT, "paid")
    # Its units are the appointment's now: no sweep releases them.
    await holds.release_expired_holds(resources)
    async with resources.db.session() as session:
        assert (await session.get(AppointmentHold, held["id"])).status == "confirmed"


async def settle_refund(api, resources, wechatpay, refund_no: str) -> None:
    from tests.fixtures_worker import wait_until

    async def sent():
        found = await support.refund_row(resources, refund_no)
        return found is not None and found.status == "processing" and found
    await wait_until(sent, timeout=30, what="the worker sends the refund")
    headers, body = wechatpay.refund_notification(refund_no, "SUCCESS")
    assert (await api.request("POST", REFUND_NOTIFY, headers=headers, body=body)).status == 200


@pytest.mark.gen_test(timeout=120)
async def test_the_users_cancellation_refunds_the_deposit_which_settles_later(
        api, resources, wechatpay, celery_worker_process):
    setup, user, pet = await deposit_setup(api, resources)
    made, params = await paid_and_booked(api, resources, wechatpay, setup, user, pet,
                                         day=tomorrow() + dt.timedelta(days=2))
    done = (await api.post(f"/v1/appointments/{made['id']}/cancel", json={"reason": "有事"},
                           token=user.token)).ok()
    assert (done["status"], done["deposit_status"]) == ("cancelled", "refunding")
    refund_no = deposits.refund_no(made["id"])
    refund = await support.refund_row(resources, refund_no)
    assert (refund.amount, refund.source_type, refund.source_id) == (
        DEPOSIT, "appointment", made["id"])
    await settle_refund(api, resources, wechatpay, refund_no)
    detail = (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()
    assert (detail["deposit_status"], detail["deposit_refunded"]) == ("refunded", DEPOSIT)
    row = await support.payment_row(resources, params["out_trade_no"])
    assert (row.status, row.refunded_amount) == ("refunded", DEPOSIT)
    told = (await api.get("/v1/notifications?category=appointment", token=user.token)).ok()
    [refunded] = [n for n in told["items"] if n["kind"] == "deposit_refunded"]
    assert refunded["target_id"] == made["id"] and refunded["payload"]["amount"] == DEPOSIT


@pytest.mark.gen_test(timeout=120)
async def test_the_providers_cancellation_refunds_and_a_no_show_keeps_the_deposit(
        api, resources, wechatpay, celery_worker_process):
    setup, user, pet = await deposit_setup(api, resources, cancel_deadline_hours=48)
    merchant = setup["merchant"]
    made, _ = await paid_and_booked(api, resources, wechatpay, setup, user, pet, "10:00")
    # Past the user's deadline: the user may not cancel, the provider may, and refunds.
    (await api.post(f"/v1/appointments/{made['id']}/cancel", json={},
                    token=user.token)).error(409, code=40984)
    cancelled = (await api.post(f"/v1/merchant/appointments/{made['id']}/actions",
                                json={"action": "cancel", "reason": "医生请假"},
                                token=merchant.token)).ok()
    assert cancelled["deposit_status"] == "refunding"
    await settle_refund(api, resources, wechatpay, deposits.refund_no(made["id"]))
    assert (await api.get(f"/v1/appointments/{made['id']}", token=user.token)).ok()[
        "deposit_status"] == "refunded"

    absent, params = await paid_and_booked(api, resources, wechatpay, setup, user, pet, "14:00")
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Appointment).where(Appointment.id == absent["id"]).values(
            start_at=utcnow() - dt.timedelta(hours=2), end_at=utcnow() - dt.timedelta(hours=1)))
    marked = (await api.post(f"/v1/merchant/appointments/{absent['id']}/actions",
                             json={"action": "no_show"}, token=merchant.token)).ok()
    assert (marked["status"], marked["deposit_status"]) == ("no_show", "paid")
    row = await support.payment_row(resources, params["out_trade_no"])
    assert await support.refunds_of(resources, row.id) == []


@pytest.mark.gen_test(timeout=90)
async def test_a_rescheduled_deposit_appointment_refunds_from_the_hold_it_was_paid_on(
        api, resources, wechatpay, celery_worker_process):
    setup, user, pet = await deposit_setup(api, resources)
    day = tomorrow() + dt.timedelta(days=2)
    made, params = await paid_and_booked(api, resources, wechatpay, setup, user, pet, day=day)
    moved = (await api.post(f"/v1/appointments/{made['id']}/reschedule",
                            json={"start": at(day, "15:00")}, token=user.token,
                            headers=key())).ok()
    assert (moved["deposit"], moved["deposit_status"]) == (DEPOSIT, "paid")
    (await api.post(f"/v1/appointments/{made['id']}/cancel", json={},
                    token=user.token)).ok()
    row = await support.payment_row(resources, params["out_trade_no"])
    [refund] = await support.refunds_of(resources, row.id)
    assert (refund.out_refund_no, refund.amount) == (deposits.refund_no(made["id"]), DEPOSIT)
    async with resources.db.session() as session:
        count = (await session.execute(select(func.count()).select_from(Appointment).where(
            Appointment.deposit_hold_id == row.payable_id))).scalar_one()
    assert count == 1


@pytest.mark.gen_test(timeout=120)
async def test_a_boarding_deposit_books_the_nights(
        api, resources, wechatpay):
    setup = await make_provider(api, resources, service={
        "kind": "boarding", "name": "寄养", "capacity": 1, "price": 20000, "deposit": 5000})
    sid = setup["service"]["id"]
    night = tomorrow() + dt.timedelta(days=3)
    stay = {"service_id": sid, "check_in": night.isoformat(),
            "check_out": (night + dt.timedelta(days=2)).isoformat()}
    user, pet = await pet_owner(resources)
    held = (await api.post("/v1/appointments/holds", json={**stay, "pet_id": pet},
                           token=user.token)).ok(201)
    params = (await pay(api, user, held["id"])).ok()
    wechatpay.pay(params["out_trade_no"])
    assert (await notify(api, wechatpay, params["out_trade_no"])).status == 200
    made = (await api.post("/v1/appointments", json={"hold_id": held["id"]},
                           token=user.token, headers=key())).ok(201)
    assert (made["kind"], made["deposit"], made["due_at_store"]) == ("boarding", 5000, 15000)

    # The nights are the appointment's: the one room is taken.
    late, late_pet = await pet_owner(resources)
    (await api.post("/v1/appointments/holds", json={**stay, "pet_id": late_pet},
                    token=late.token)).error(409, code=40981)
    nights = (await api.get(f"/v1/services/{sid}/slots?date={night}")).ok()["nights"]
    assert nights[0]["left"] == 0
