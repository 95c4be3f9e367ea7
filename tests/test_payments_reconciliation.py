"""Daily reconciliation: WeChat's trade bill against our payments and refunds of a Beijing
day, every kind of mismatch found and reported to admins, and the admin endpoints (list,
report, run) with their refusals."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from models.payments import Payment
from pawhome.payments import jobs, notifies
from pawhome.payments.reconciliation import OurPayment, OurRefund, compare, day_bounds
from tests import payments_support as support

CHINA = dt.timezone(dt.timedelta(hours=8))
RUN = "/v1/admin/payments/reconciliations/{}/run"


def bill_row(state: str, no: str, amount: int = 0, *, refund_no: str = "",
             refund: int = 0, transaction_id: str = "") -> dict:
    return {"trade_state": state, "out_trade_no": no, "amount": amount,
            "transaction_id": transaction_id or f"42{no}", "out_refund_no": refund_no,
            "refund_amount": refund, "trade_time": "2026-12-01 12:00:00"}


def test_compare_names_each_kind_of_mismatch():
    rows = [bill_row("SUCCESS", "A", 100), bill_row("SUCCESS", "B", 205),
            bill_row("SUCCESS", "C", 300), bill_row("SUCCESS", "T", 50, transaction_id="X"),
            bill_row("REVOKED", "Z", 999),
            bill_row("REFUND", "A", 100, refund_no="RA", refund=40),
            bill_row("REFUND", "B", 205, refund_no="RB", refund=10),
            bill_row("REFUND", "B", 205, refund_no="RX", refund=5)]
    paid = [OurPayment("A", "42A", 100), OurPayment("B", "42B", 200),
            OurPayment("D", "42D", 400), OurPayment("T", "42T", 50)]
    refunds = [OurRefund("RA", "A", 40), OurRefund("RB", "B", 11), OurRefund("RY", "D", 7)]
    result = compare(rows, paid, refunds, {"C": OurPayment("C", "", 0, "prepaid")})
    kinds = {(m["kind"], m.get("out_refund_no") or m["out_trade_no"]) for m in result.mismatches}
    assert kinds == {("amount", "B"), ("missing_here", "C"), ("missing_there", "D"),
                     ("transaction", "T"), ("refund_amount", "RB"),
                     ("refund_missing_here", "RX"), ("refund_missing_there", "RY")}
    missing = next(m for m in result.mismatches if m["kind"] == "missing_here")
    assert missing["our_status"] == "prepaid" and missing["bill_amount"] == 300
    assert (result.bill_count, result.our_count) == (7, 7)
    assert result.bill_total == 100 + 205 + 300 + 50 - 40 - 10 - 5
    assert result.our_total == 100 + 200 + 400 + 50 - 40 - 11 - 7
    assert compare(rows[:1], paid[:1], []).mismatches == []


def test_a_bill_day_is_a_beijing_day():
    start, end = day_bounds(dt.date(2026, 12, 5))
    assert start == dt.datetime(2026, 12, 4, 16, 0) and end - start == dt.timedelta(days=1)


def a_day_ago(days: int) -> tuple[dt.date, dt.datetime]:
    """A Beijing day some days back and noon of it (aware)."""
    day = dt.datetime.now(CHINA).date() - dt.timedelta(days=days)
    return day, dt.datetime.combine(day, dt.time(12), CHINA)


async def pay_on(resources, wechatpay, noon: dt.datetime, amount: int, *,
                 notify: bool = True) -> dict:
    payer = await support.make_payer(resources)
    opened = await support.prepare(resources, payer, amount=amount)
    wechatpay.pay(opened["out_trade_no"], when=noon)
    if notify:
        headers, body = wechatpay.payment_notification(opened["out_trade_no"])
        assert (await notifies.handle_notification(resources, headers, body))[0] == 200
    return opened


async def settle_refund_on(resources, wechatpay, no: str, when: dt.datetime) -> None:
    """WeChat pays a refund out at `when` and notifies (as the fake does, at that time)."""
    refund = wechatpay.settle_refund(no, "SUCCESS", when=when)
    resource = {key: refund[key] for key in ("mchid", "out_trade_no", "transaction_id",
                                             "out_refund_no", "refund_id", "success_time",
                                             "user_received_account")}
    resource.update(refund_status="SUCCESS", amount=refund["amount"])
    headers, body = wechatpay.notification("REFUND.SUCCESS", "退款成功", "refund", resource)
    assert (await notifies.handle_notification(resources, headers, body))[0] == 200


@pytest.mark.gen_test(timeout=120)
async def test_a_day_with_every_kind_of_mismatch_is_reported_to_admins(api, resources,
                                                                       wechatpay):
    admin = await support.make_payer(resources, role="admin")
    day, noon = a_day_ago(3)
    fine = await pay_on(resources, wechatpay, noon, 1000)
    dearer = await pay_on(resources, wechatpay, noon, 2000)
    wechatpay.bill_amount_overrides[dearer["out_trade_no"]] = 2100
    unheard = await pay_on(resources, wechatpay, noon, 3000, notify=False)
    other_id = await pay_on(resources, wechatpay, noon, 500)
    with wechatpay.lock:
        wechatpay.transactions[other_id["out_trade_no"]]["transaction_id"] = "4200NOT-OURS"
    only_ours = await support.prepare(resources, await support.make_payer(resources),
                                      amount=4000)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Payment).where(
            Payment.out_trade_no == only_ours["out_trade_no"]).values(
            status="paid", paid_amount=4000, transaction_id="4200ONLY-OURS",
            paid_at=noon.astimezone(dt.UTC).replace(tzinfo=None)))
    # Refunds of `fine`: one settled both sides, one WeChat paid out but we never heard of,
    # one we settled that WeChat's bill lacks, one of another amount there.
    both, theirs, ours, odd = "RBOTH" + fine["out_trade_no"][1:9], "RTHEIRS" + \
        fine["out_trade_no"][1:9], "ROURS" + fine["out_trade_no"][1:9], \
        "RODD" + fine["out_trade_no"][1:9]
    for no, amount in ((both, 100), (theirs, 200), (ours, 50), (odd, 70)):
        refund = await support.refund_later(resources, fine["payable_id"], no, amount)
        await jobs.send_refund(resources, refund.id)
    await settle_refund_on(resources, wechatpay, both, noon)
    await settle_refund_on(resources, wechatpay, odd, noon)
    with wechatpay.lock:
        wechatpay.refunds[odd]["amount"]["refund"] = 75  # the bill says 75
    wechatpay.settle_refund(theirs, "SUCCESS", when=noon)  # its notify is lost
    await settle_refund_on(resources, wechatpay, ours, noon)
    with wechatpay.lock:
        wechatpay.refunds[ours]["status"] = "PROCESSING"  # not in WeChat's bill

    report = (await api.post(RUN.format(day.isoformat()), token=admin.token)).ok()
    assert report["status"] == "mismatched" and report["bill_date"] == day.isoformat()
    found = {(m["kind"], m.get("out_refund_no") or m["out_trade_no"])
             for m in report["mismatches"]}
    assert found == {("amount", dearer["out_trade_no"]),
                     ("missing_here", unheard["out_trade_no"]),
                     ("transaction", other_id["out_trade_no"]),
                     ("missing_there", only_ours["out_trade_no"]),
                     ("refund_missing_here", theirs), ("refund_missing_there", ours),
                     ("refund_amount", odd)}
    assert report["mismatch_count"] == 7
    assert next(m for m in report["mismatches"]
                if m["kind"] == "missing_here")["our_status"] == "prepaid"
    assert report["our_total"] == 1000 + 2000 + 500 + 4000 - 100 - 50 - 70
    assert report["bill_total"] == 1000 + 2100 + 3000 + 500 - 100 - 200 - 75

    listed = (await api.get("/v1/admin/payments/reconciliations", token=admin.token)).ok()
    assert listed["items"][0]["bill_date"] == day.isoformat()
    assert "mismatches" not in listed["items"][0]
    again = (await api.get(f"/v1/admin/payments/reconciliations/{day.isoformat()}",
                           token=admin.token)).ok()
    assert again["mismatches"] == report["mismatches"]
    told = (await api.get("/v1/notifications?category=system", token=admin.token)).ok()
    notes = [i for i in told["items"] if i["kind"] == "payment_reconciliation"]
    assert notes and notes[0]["payload"]["bill_date"] == day.isoformat()
    audit = await audit_entries(resources, day.isoformat())
    assert audit == [("payments.reconcile", admin.user_id)]


async def audit_entries(resources, target_id: str) -> list[tuple[str, int]]:
    from sqlalchemy import select

    from models.platform import AuditEntry
    async with resources.db.session() as session:
        rows = (await session.execute(select(AuditEntry).where(
            AuditEntry.target_type == "reconciliation",
            AuditEntry.target_id == target_id))).scalars()
        return [(r.action, r.actor_id) for r in rows]


@pytest.mark.gen_test(timeout=90)
async def test_a_day_that_adds_up_is_matched_and_reruns_replace_the_report(api, resources,
                                                                           wechatpay):
    admin = await support.make_payer(resources, role="admin")
    day, noon = a_day_ago(5)
    await pay_on(resources, wechatpay, noon, 1200)
    await pay_on(resources, wechatpay, noon, 800)
    first = (await api.post(RUN.format(day.isoformat()), token=admin.token)).ok()
    assert (first["status"], first["bill_count"], first["our_count"]) == ("matched", 2, 2)
    assert first["bill_total"] == first["our_total"] == 2000 and first["mismatches"] == []
    second = (await api.post(RUN.format(day.isoformat()), token=admin.token)).ok()
    assert second["status"] == "matched" and second["created_at"] == first["created_at"]
    empty_day, _ = a_day_ago(40)
    quiet = (await api.post(RUN.format(empty_day.isoformat()), token=admin.token)).ok()
    assert (quiet["status"], quiet["bill_count"], quiet["our_count"]) == ("matched", 0, 0)


@pytest.mark.gen_test(timeout=60)
async def test_a_bill_wechat_cannot_give_is_a_failed_report_and_503(api, resources, wechatpay):
    admin = await support.make_payer(resources, role="admin")
    day, noon = a_day_ago(7)
    await pay_on(resources, wechatpay, noon, 100)
    wechatpay.fail_next("/v3/bill/tradebill", 500)
    reply = await api.post(RUN.format(day.isoformat()), token=admin.token)
    reply.error(503, code=50310)
    failed = (await api.get(f"/v1/admin/payments/reconciliations/{day.isoformat()}",
                            token=admin.token)).ok()
    assert failed["status"] == "failed" and "SYSTEM_ERROR" in failed["detail"]
    assert (await api.post(RUN.format(day.isoformat()), token=admin.token)).ok()[
        "status"] == "matched"


@pytest.mark.gen_test(timeout=60)
async def test_reconciliation_endpoints_are_for_admins_and_check_the_day(api, resources,
                                                                         wechatpay):
    admin = await support.make_payer(resources, role="admin")
    user = await support.make_payer(resources)
    (await api.get("/v1/admin/payments/reconciliations", token=user.token)).error(403)
    (await api.post(RUN.format("2026-01-01"), token=user.token)).error(403)
    (await api.get("/v1/admin/payments", token=user.token)).error(403)
    for bad in ("yesterday", "2026-13-01", "20261201", "2999-01-01"):
        (await api.post(RUN.format(bad), token=admin.token)).error(422, field="bill_date")
    (await api.get("/v1/admin/payments/reconciliations/1999-01-01",
                   token=admin.token)).error(404)
    (await api.get("/v1/admin/payments/reconciliations/not-a-day", token=admin.token)).error(404)
    (await api.get("/v1/admin/payments?status=lost", token=admin.token)).error(422)
    (await api.get("/v1/admin/payments?nope=1", token=admin.token)).error(422)


@pytest.mark.gen_test(timeout=60)
async def test_admins_look_a_payment_up_with_its_refunds_and_notifies(api, resources,
                                                                      wechatpay):
    admin = await support.make_payer(resources, role="admin")
    _, noon = a_day_ago(0)
    paid = await pay_on(resources, wechatpay, noon, 900)
    refund = await support.refund_later(resources, paid["payable_id"],
                                        "RLOOK" + paid["out_trade_no"][1:9], 300)
    found = (await api.get(f"/v1/admin/payments?out_trade_no={paid['out_trade_no']}",
                           token=admin.token)).ok()
    assert found["total"] == 1
    item = found["items"][0]
    assert (item["status"], item["paid_amount"], item["refund_reserved"]) == ("paid", 900, 300)
    assert [r["out_refund_no"] for r in item["refunds"]] == [refund.out_refund_no]
    assert [n["outcome"] for n in item["notifications"]] == ["applied"]
    some = (await api.get("/v1/admin/payments?status=paid&limit=5", token=admin.token)).ok()
    assert some["limit"] == 5 and all(i["status"] == "paid" for i in some["items"])
