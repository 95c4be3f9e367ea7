"""The points ledger: every movement a row, once per key, the balance never negative under
any concurrency and always the sum of the ledger; the balance endpoint (cached, dropped
after each change), the ledger by cursor, admin adjustments and rules, check-in awards by the
rules, order points on completion, and the nightly reconciliation finding planted drift.
Real MariaDB and Redis; nothing of ours mocked."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from models.base import utcnow
from models.mall import Order, RefundRequest
from models.platform import AuditEntry
from models.points import PointsAccount, PointsEntry
from pawhome.platform import cache
from pawhome.platform.errors import InsufficientPoints, PointsKeyReused
from pawhome.platform.pagination import PageQuery
from pawhome.points import earning, expiry, ledger, reconciliation
from tests.mall_support import make_address, make_member, make_product, make_shop
from tests.points_support import (
    assert_balance_matches_ledger,
    balance_and_ledger,
    default_rules,  # noqa: F401  (fixture)
    give_points,
)


async def spend(resources, user_id: int, points: int, key: str | None = None) -> bool:
    """One spend in its own transaction: True if it went through, False if refused."""
    try:
        async with resources.db.session() as session, session.begin():
            await ledger.change(session, user_id, -points, reason="points_mall",
                                key=key or uuid.uuid4().hex)
        return True
    except InsufficientPoints:
        return False


@pytest.mark.gen_test(timeout=120)
async def test_hundred_concurrent_spends_of_ten_against_five_hundred_exactly_fifty_succeed(
        resources):
    buyer = await make_member(resources)
    await give_points(resources, buyer.user_id, 500)
    results = await asyncio.gather(*[spend(resources, buyer.user_id, 10) for _ in range(100)])
    assert results.count(True) == 50 and results.count(False) == 50
    balance, total, count = await balance_and_ledger(resources, buyer.user_id)
    assert (balance, total, count) == (0, 0, 51)
    await assert_balance_matches_ledger(resources, buyer.user_id)
    async with resources.db.session() as session:
        afters = sorted((await session.execute(select(PointsEntry.balance_after).where(
            PointsEntry.user_id == buyer.user_id, PointsEntry.delta < 0))).scalars())
    assert afters == list(range(0, 500, 10))  # each spend saw the one before it


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_earns_and_spends_leave_the_balance_equal_to_the_ledger(resources):
    buyer = await make_member(resources)
    await give_points(resources, buyer.user_id, 100)

    async def earn(points: int) -> bool:
        await give_points(resources, buyer.user_id, points)
        return True

    work = [earn(7) if i % 2 else spend(resources, buyer.user_id, 13) for i in range(80)]
    results = await asyncio.gather(*work)
    balance = await assert_balance_matches_ledger(resources, buyer.user_id)
    spends_ok = sum(1 for i, ok in enumerate(results) if ok and i % 2 == 0)
    assert balance == 100 + 40 * 7 - 13 * spends_ok


@pytest.mark.gen_test(timeout=60)
async def test_the_same_key_twice_changes_nothing_and_returns_the_first_change(resources):
    buyer = await make_member(resources)
    async with resources.db.session() as session, session.begin():
        first = await ledger.change(session, buyer.user_id, 30, reason="activity",
                                    key="signup-gift", ref_type="activity", ref_id="signup")
    async with resources.db.session() as session, session.begin():
        again = await ledger.change(session, buyer.user_id, 30, reason="activity",
                                    key="signup-gift", ref_type="activity", ref_id="signup")
    assert again.replayed and not first.replayed
    assert (again.entry_id, again.balance_after) == (first.entry_id, 30)
    with pytest.raises(PointsKeyReused):  # the key names another change: refused
        async with resources.db.session() as session, session.begin():
            await ledger.change(session, buyer.user_id, 99, reason="activity",
                                key="signup-gift")
    assert await balance_and_ledger(resources, buyer.user_id) == (30, 30, 1)

    # Twenty at once with one key: one row.
    results = await asyncio.gather(*[give_once(resources, buyer.user_id) for _ in range(20)])
    assert sum(1 for r in results if not r.replayed) == 1
    assert await balance_and_ledger(resources, buyer.user_id) == (35, 35, 2)


@pytest.mark.gen_test(timeout=60)
async def test_new_users_first_changes_at_once_do_not_deadlock(resources):
    members = [await make_member(resources) for _ in range(30)]  # no ledger rows yet

    async def first_and_second(user_id: int) -> tuple[int, int]:
        one = await give_points(resources, user_id, 10)
        two = await give_points(resources, user_id, 5)
        return one, two

    results = await asyncio.gather(*[first_and_second(m.user_id) for m in members])
    assert all(sorted(r) == [10, 15] for r in results)
    for member in members:
        assert await assert_balance_matches_ledger(resources, member.user_id) == 15


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_racing_its_first_attempt_past_the_snapshot_is_a_replay(resources):
    buyer = await make_member(resources)
    await give_points(resources, buyer.user_id, 1)
    async with resources.db.session() as session, session.begin():
        await session.execute(select(PointsEntry.id).limit(1))  # this snapshot begins now
        first = await give_once(resources, buyer.user_id)  # commits after the snapshot
        again = await ledger.change(session, buyer.user_id, 5, reason="activity",
                                    key="double-tap")
        assert again.replayed and again.entry_id == first.entry_id
    assert await balance_and_ledger(resources, buyer.user_id) == (6, 6, 2)


async def give_once(resources, user_id: int) -> ledger.Movement:
    async with resources.db.session() as session, session.begin():
        return await ledger.change(session, user_id, 5, reason="activity", key="double-tap")


@pytest.mark.gen_test(timeout=60)
async def test_a_spend_beyond_the_balance_is_refused_and_a_rolled_back_change_leaves_nothing(
        resources):
    buyer = await make_member(resources)
    await give_points(resources, buyer.user_id, 40)
    assert not await spend(resources, buyer.user_id, 41)
    with pytest.raises(RuntimeError):
        async with resources.db.session() as session, session.begin():
            await ledger.change(session, buyer.user_id, -40, reason="points_mall", key="k1")
            raise RuntimeError("the caller's own step failed")
    assert await balance_and_ledger(resources, buyer.user_id) == (40, 40, 1)
    async with resources.db.session() as session, session.begin():  # the key is still free
        moved = await ledger.change(session, buyer.user_id, -40, reason="points_mall", key="k1")
    assert not moved.replayed and moved.balance_after == 0


@pytest.mark.gen_test(timeout=60)
async def test_the_balance_is_cached_and_dropped_after_every_change(api, resources):
    buyer = await make_member(resources)
    shown = (await api.get("/v1/points", token=buyer.token)).ok()
    assert shown["balance"] == 0 and shown["expires"] is False
    assert await resources.cache.redis.get(resources.cache.key("points", "balance",
                                                               buyer.user_id)) is not None
    await give_points(resources, buyer.user_id, 25)  # a change made in another transaction
    await cache.forgotten()
    assert (await api.get("/v1/points", token=buyer.token)).ok()["balance"] == 25
    ttl = await resources.cache.redis.ttl(resources.cache.key("points", "balance",
                                                              buyer.user_id))
    assert 3500 < ttl <= 3600
    (await api.get("/v1/points")).error(401)


@pytest.mark.gen_test(timeout=60)
async def test_a_rule_change_shows_in_the_balance_reply_at_once(api, resources, default_rules):
    admin, buyer = await make_member(resources, "admin"), await make_member(resources)
    assert (await api.get("/v1/points", token=buyer.token)).ok()["payment"] == {
        "points_per_yuan": 100, "max_percent": 50}
    rules = (await api.get("/v1/admin/points/rules", token=admin.token)).ok()
    (await api.put("/v1/admin/points/rules", token=admin.token,
                   json={**rules, "payment_max_percent": 30, "expiry_days": 365})).ok()
    await cache.forgotten()
    shown = (await api.get("/v1/points", token=buyer.token)).ok()
    assert shown["payment"]["max_percent"] == 30 and shown["expires"] is True


@pytest.mark.gen_test(timeout=60)
async def test_the_ledger_pages_by_cursor_newest_first_and_filters_earned_and_spent(
        api, resources):
    buyer, other = await make_member(resources), await make_member(resources)
    for points in (10, 20, 30):
        await give_points(resources, buyer.user_id, points)
    assert await spend(resources, buyer.user_id, 15)
    await give_points(resources, other.user_id, 999)
    first = (await api.get("/v1/points/ledger?limit=3", token=buyer.token)).ok()
    assert [e["delta"] for e in first["items"]] == [-15, 30, 20]
    assert first["items"][0]["balance_after"] == 45
    rest = (await api.get(f"/v1/points/ledger?limit=3&cursor={first['nextCursor']}",
                          token=buyer.token)).ok()
    assert [e["delta"] for e in rest["items"]] == [10] and rest["nextCursor"] is None
    earned = (await api.get("/v1/points/ledger?direction=earned", token=buyer.token)).ok()
    assert [e["delta"] for e in earned["items"]] == [30, 20, 10]
    spent = (await api.get("/v1/points/ledger?direction=spent", token=buyer.token)).ok()
    assert [(e["delta"], e["reason"]) for e in spent["items"]] == [(-15, "points_mall")]
    (await api.get("/v1/points/ledger?cursor=bm9wZQ", token=buyer.token)).error(422,
                                                                               field="cursor")
    (await api.get("/v1/points/ledger?direction=sideways", token=buyer.token)).error(422)


@pytest.mark.gen_test(timeout=60)
async def test_an_admin_adjusts_points_with_a_reason_once_per_key_and_it_is_audited(
        api, resources):
    admin = await make_member(resources, "admin")
    buyer = await make_member(resources)
    path = f"/v1/admin/users/{buyer.user_id}/points"
    body = {"delta": 200, "reason": "活动补偿"}
    done = (await api.post(path, json=body, token=admin.token,
                           headers={"Idempotency-Key": "comp-1"})).ok()
    assert done["balance"] == 200 and done["delta"] == 200
    again = await api.post(path, json=body, token=admin.token,
                           headers={"Idempotency-Key": "comp-1"})
    assert again.ok()["entry_id"] == done["entry_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    (await api.post(path, json={"delta": -500, "reason": "扣除"}, token=admin.token,
                    headers={"Idempotency-Key": "take-1"})).error(422, code=42230)
    (await api.post(path, json=body, token=admin.token)).error(422, field="Idempotency-Key")
    (await api.post(path, json=body, token=buyer.token,
                    headers={"Idempotency-Key": "self-1"})).error(403)
    (await api.post(path, json={"delta": 0, "reason": "x"}, token=admin.token,
                    headers={"Idempotency-Key": "zero"})).error(422, field="delta")
    (await api.post("/v1/admin/users/999999999/points", json=body, token=admin.token,
                    headers={"Idempotency-Key": "ghost"})).error(404)
    assert await balance_and_ledger(resources, buyer.user_id) == (200, 200, 1)
    seen = (await api.get(path, token=admin.token)).ok()
    assert seen["points"]["balance"] == 200 and len(seen["ledger"]["items"]) == 1
    (await api.get(path, token=buyer.token)).error(403)
    (await api.get("/v1/admin/users/999999999/points", token=admin.token)).error(404)
    entries = (await api.get("/v1/points/ledger", token=buyer.token)).ok()["items"]
    assert [(e["reason"], e["note"]) for e in entries] == [("admin_adjust", "活动补偿")]
    async with resources.db.session() as session:
        audited = list((await session.execute(select(AuditEntry).where(
            AuditEntry.action == "points.adjust",
            AuditEntry.target_id == str(buyer.user_id)))).scalars())
    assert len(audited) == 1 and audited[0].actor_id == admin.user_id
    assert audited[0].after["balance"] == 200


@pytest.mark.gen_test(timeout=60)
async def test_admins_edit_the_rules_and_check_ins_earn_by_them(api, resources, default_rules):
    admin, buyer = await make_member(resources, "admin"), await make_member(resources)
    rules = (await api.get("/v1/admin/points/rules", token=admin.token)).ok()
    assert rules["checkin_points"] == 10 and rules["expiry_days"] == 0
    rules.update(checkin_points=5, makeup_checkin_cost=7,
                 streak_bonuses=[{"days": 3, "points": 20}])
    (await api.put("/v1/admin/points/rules", json=rules, token=admin.token)).ok()
    (await api.put("/v1/admin/points/rules", json=rules, token=buyer.token)).error(403)
    (await api.put("/v1/admin/points/rules", token=admin.token, json={
        **rules, "streak_bonuses": [{"days": 3, "points": 1}, {"days": 3, "points": 2}]})
     ).error(422)
    (await api.put("/v1/admin/points/rules", json={**rules, "payment_max_percent": 101},
                   token=admin.token)).error(422, field="payment_max_percent")

    day = dt.date(2026, 12, 1)
    for offset in range(3):
        async with resources.db.session() as session, session.begin():
            award = await earning.award_checkin(session, buyer.user_id,
                                                day + dt.timedelta(days=offset), offset + 1)
    assert (award.points, award.bonus, award.balance) == (5, 20, 35)
    async with resources.db.session() as session, session.begin():  # the same day again
        again = await earning.award_checkin(session, buyer.user_id, day + dt.timedelta(2), 3)
    assert again.replayed and again.balance == 35
    async with resources.db.session() as session, session.begin():
        cost = await earning.charge_makeup_checkin(session, buyer.user_id,
                                                   dt.date(2026, 11, 30))
    assert cost is not None and cost.delta == -7 and cost.balance_after == 28
    reasons = [e["reason"] for e in
               (await api.get("/v1/points/ledger", token=buyer.token)).ok()["items"]]
    assert reasons == ["makeup_checkin", "checkin_bonus", "checkin", "checkin", "checkin"]
    await assert_balance_matches_ledger(resources, buyer.user_id)


@pytest.mark.gen_test(timeout=60)
async def test_points_that_expire_show_what_expires_soon(api, resources, default_rules):
    admin, buyer = await make_member(resources, "admin"), await make_member(resources)
    rules = (await api.get("/v1/admin/points/rules", token=admin.token)).ok()
    (await api.put("/v1/admin/points/rules", json={**rules, "expiry_days": 10},
                   token=admin.token)).ok()
    async with resources.db.session() as session, session.begin():
        await earning.award_checkin(session, buyer.user_id, dt.date(2026, 12, 2), 1)
    await give_points(resources, buyer.user_id, 50, reason="points_mall_refund")  # no expiry
    assert await spend(resources, buyer.user_id, 55)
    await cache.forgotten()
    shown = (await api.get("/v1/points", token=buyer.token)).ok()
    # 10 expiring + 50 that do not; 55 spent, oldest-expiring first: 5 left, none expiring.
    assert shown["balance"] == 5 and shown["expires"] is True and shown["expiring_soon"] == 0
    async with resources.db.session() as session, session.begin():
        await earning.award_checkin(session, buyer.user_id, dt.date(2026, 12, 3), 2)
    await cache.forgotten()
    shown = (await api.get("/v1/points", token=buyer.token)).ok()
    assert shown["balance"] == 15 and shown["expiring_soon"] == 10


async def completed_order(api, resources, buyer, price: int) -> int:
    """An order of `price` fen bought, paid, shipped and confirmed by the buyer."""
    from tests.test_orders import buy, paid

    merchant, _ = await make_shop(resources, free_over=0)
    _, (sku,) = await make_product(resources, merchant.user_id, [{"price": price, "stock": 5}])
    address_id = await make_address(resources, buyer.user_id)
    order = (await buy(api, buyer, [(sku, 1)], address_id)).ok(201)["orders"][0]
    await paid(resources, order["id"])
    (await api.post(f"/v1/merchant/orders/{order['id']}/ship", token=merchant.token,
                    json={"carrier": "顺丰", "tracking_no": "SF1"})).ok()
    (await api.post(f"/v1/orders/{order['id']}/confirm-receipt", token=buyer.token)).ok()
    return int(order["id"])


@pytest.mark.gen_test(timeout=90)
async def test_a_completed_order_earns_points_per_yuan_within_the_daily_cap(
        api, resources, default_rules):
    admin, buyer = await make_member(resources, "admin"), await make_member(resources)
    rules = (await api.get("/v1/admin/points/rules", token=admin.token)).ok()
    (await api.put("/v1/admin/points/rules", token=admin.token, json={
        **rules, "order_points_per_yuan": 2, "order_points_daily_cap": 300})).ok()
    first = await completed_order(api, resources, buyer, 12_345)  # ¥123.45 -> 246 points
    second = await completed_order(api, resources, buyer, 9_900)  # 198, capped to 54
    entries = (await api.get("/v1/points/ledger", token=buyer.token)).ok()["items"]
    assert [(e["reason"], e["ref_id"], e["delta"]) for e in entries] == [
        ("order_completed", str(second), 54), ("order_completed", str(first), 246)]
    assert entries[0]["note"] == "capped at 300 a day"
    await assert_balance_matches_ledger(resources, buyer.user_id)


@pytest.mark.gen_test(timeout=60)
async def test_refunds_take_order_points_back_in_proportion_never_below_zero(resources):
    buyer = await make_member(resources)
    order = Order(id=10**12 + buyer.user_id, user_id=buyer.user_id, paid_amount=10_000,
                  refunded_amount=0)
    async with resources.db.session() as session, session.begin():
        await ledger.change(session, buyer.user_id, 100, reason="order_completed",
                            key=f"order_completed:{order.id}", ref_type="order",
                            ref_id=order.id)

    async def refund(request_id: int, amount: int, whole: bool) -> None:
        order.refunded_amount += amount
        async with resources.db.session() as session, session.begin():
            await earning.take_back_order_points(
                session, order, RefundRequest(id=request_id, amount=amount), whole)

    await refund(1, 2_500, False)  # a quarter of the money: a quarter of the points
    assert (await balance_and_ledger(resources, buyer.user_id))[0] == 75
    assert await spend(resources, buyer.user_id, 70)  # spent meanwhile
    await refund(2, 7_500, True)  # the rest: 75 due, 5 held
    async with resources.db.session() as session:
        last = (await session.execute(select(PointsEntry).where(
            PointsEntry.user_id == buyer.user_id).order_by(PointsEntry.id.desc()))).scalar()
    assert (last.reason, last.delta, last.balance_after) == ("order_refunded", -5, 0)
    assert last.note == "shortfall 70"
    await refund(2, 0, True)  # the same refund settled twice: a replay
    assert await balance_and_ledger(resources, buyer.user_id) == (0, 0, 4)


@pytest.mark.gen_test(timeout=60)
async def test_the_reconciliation_reports_planted_drift_and_admins_read_it(api, resources):
    admin = await make_member(resources, "admin")
    honest, tampered = await make_member(resources), await make_member(resources)
    await give_points(resources, honest.user_id, 10)
    await give_points(resources, tampered.user_id, 10)
    async with resources.db.session() as session, session.begin():  # written around the ledger
        await session.execute(update(PointsAccount).where(
            PointsAccount.user_id == tampered.user_id).values(balance=1010))
    report = await reconciliation.reconcile(resources)
    drifted = {d["user_id"]: d for d in report["drifts"]}
    assert tampered.user_id in drifted and honest.user_id not in drifted
    assert drifted[tampered.user_id] == {"user_id": tampered.user_id, "balance": 1010,
                                         "ledger_sum": 10, "drift": 1000}
    assert reconciliation.DRIFT_ACCOUNTS._value.get() == report["drift_count"] >= 1
    listed = (await api.get("/v1/admin/points/reconciliations", token=admin.token)).ok()
    assert listed["items"][0]["id"] == report["id"]
    one = (await api.get(f"/v1/admin/points/reconciliations/{report['id']}",
                         token=admin.token)).ok()
    assert one["drift_count"] == report["drift_count"]
    (await api.get("/v1/admin/points/reconciliations", token=honest.token)).error(403)
    (await api.get("/v1/admin/points/reconciliations/999999999", token=admin.token)).error(404)
    async with resources.db.session() as session, session.begin():  # repaired: clean again
        await session.execute(update(PointsAccount).where(
            PointsAccount.user_id == tampered.user_id).values(balance=10))
    ran = (await api.post("/v1/admin/points/reconciliations", token=admin.token)).ok(201)
    assert tampered.user_id not in {d["user_id"] for d in ran["drifts"]}
    assert ran["finished_at"] and utcnow().year >= 2026


@pytest.mark.gen_test(timeout=90)
async def test_the_nightly_job_on_the_real_worker_reports_planted_drift(
        celery_worker_process, resources):
    from tests.fixtures_worker import wait_until
    from workers.celery_app import celery_app
    from workers.schedule import beat_schedule

    entry = beat_schedule(resources.settings)["points-reconcile"]
    assert entry["task"] == "default.reconcile_points"
    tampered = await make_member(resources)
    await give_points(resources, tampered.user_id, 5)
    async with resources.db.session() as session, session.begin():
        await session.execute(update(PointsAccount).where(
            PointsAccount.user_id == tampered.user_id).values(balance=4))
    before = (await reconciliation.list_reports(resources, PageQuery()))["total"]
    celery_app.send_task(entry["task"])

    async def reported():
        page = await reconciliation.list_reports(resources, PageQuery())
        return page["total"] > before and page["items"][0]

    report = await wait_until(reported, timeout=30, what="the reconciliation report")
    assert {"user_id": tampered.user_id, "balance": 4, "ledger_sum": 5, "drift": -1} \
        in report["drifts"]
    async with resources.db.session() as session, session.begin():
        await session.execute(update(PointsAccount).where(
            PointsAccount.user_id == tampered.user_id).values(balance=5))


@pytest.mark.gen_test(timeout=60)
async def test_lapsed_points_leave_the_balance_once_oldest_first(resources):
    buyer = await make_member(resources)
    now = utcnow()
    for points, days in ((30, -2), (40, -1), (50, 5)):  # two lots lapsed, one still good
        async with resources.db.session() as session, session.begin():
            await ledger.change(session, buyer.user_id, points, reason="checkin",
                                key=f"lot:{points}", expires_at=now + dt.timedelta(days=days))
    await give_points(resources, buyer.user_id, 10, reason="points_mall_refund")  # never lapses
    assert await spend(resources, buyer.user_id, 45)  # takes the 30 lot and 15 of the 40 lot
    done = await expiry.expire_due(resources, now)
    assert done["users"] >= 1
    async with resources.db.session() as session:
        last = (await session.execute(select(PointsEntry).where(
            PointsEntry.user_id == buyer.user_id).order_by(PointsEntry.id.desc()))).scalar()
    assert (last.reason, last.delta, last.balance_after) == ("expired", -25, 60)
    again = await expiry.expire_due(resources, now)  # a second run: nothing more lapsed
    assert await balance_and_ledger(resources, buyer.user_id) == (60, 60, 6)
    assert again == {"users": 0, "points": 0}
    await assert_balance_matches_ledger(resources, buyer.user_id)
