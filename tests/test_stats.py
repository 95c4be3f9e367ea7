"""Statistics: figures fall on Asia/Shanghai days (rows written a microsecond either side of
midnight in Shanghai), a rerun of the job writes the same figures, active users come from
requests and sockets through the gateway's recorder and survive Redis losing them, the CSV
is a safe download, every query reads an index, the overview shows the live fleet, and only
admins get any of it."""
from __future__ import annotations

import datetime as dt
import random
import re
import uuid

import jwt
import pytest
from sqlalchemy import event, select, text

import wsclient
from models.community import Like
from models.mall import Order
from models.payments import PaymentRefund
from models.points import PointsEntry
from models.stats import ActiveUserSketch, DailyStat
from models.users import User
from pawhome.platform import activity
from pawhome.stats import daily, metrics
from tests.fixtures_worker import wait_until
from tests.mall_support import make_shop
from tests.test_auth_tokens import claims_for
from tests.test_ws_protocol import ws_url

ROUTES = ("/v1/admin/stats/daily?from={d}&to={d}", "/v1/admin/stats/daily.csv?from={d}&to={d}",
          "/v1/admin/stats/overview")
US = dt.timedelta(microseconds=1)


def a_past_day(band: int) -> dt.date:
    """A day no other test writes rows on: other files write today's, and each test here
    draws from its own band of 200 days. A test may use the 34 days before its day and a
    monthly figure looks 29 more back, so what one test touches spans under 125 days and
    never reaches the next band (bands of 120 overlapped: a flaky monthly figure)."""
    return dt.date(2021, 1, 1) + dt.timedelta(days=200 * band + 70 + random.randrange(60))


def midnight_utc(day: dt.date) -> dt.datetime:
    """00:00 of `day` in Asia/Shanghai, as the naive UTC the columns hold (16:00 the day
    before)."""
    return activity.day_bounds(day)[0]


async def figures(api, admin, first: dt.date, last: dt.date, names: str = "") -> dict:
    query = f"/v1/admin/stats/daily?from={first}&to={last}" + (f"&metrics={names}" if names
                                                                 else "")
    data = (await api.get(query, token=admin.token)).ok()
    return {row["day"]: row for row in data["days"]}


async def stored(resources, day: dt.date) -> dict[str, int]:
    async with resources.db.session() as session:
        rows = (await session.execute(select(DailyStat).where(DailyStat.day == day))).scalars()
        return {r.metric: r.value for r in rows}


async def write_rows_around(resources, day: dt.date) -> None:
    """Rows a microsecond before, at, and a microsecond before the end of `day` (Shanghai),
    and at the start of the next day."""
    start, end = activity.day_bounds(day)
    merchant, _ = await make_shop(resources)
    before, first, last, after = start - US, start, end - US, end
    async with resources.db.session() as session, session.begin():
        people = [User(nickname=f"s{n}", created_at=at)
                  for n, at in enumerate((before, first, last, after))]
        session.add_all(people)
        await session.flush()
        buyer = people[0].id
        for n, at in enumerate((before, first, first, last, after)):
            session.add(Like(target_type="post", target_id=10**12 + n, user_id=buyer,
                             created_at=at))
        for placed, paid, amount in (
                (before - dt.timedelta(hours=1), before, 1000),  # paid the day before
                (before, first, 2500),  # placed the day before, paid on the day
                (first, last, 4000),
                (last, None, 9900),  # placed on the day, never paid
                (last, after, 700)):  # paid the next day
            session.add(Order(order_no=uuid.uuid4().hex[:32], user_id=buyer,
                              merchant_id=merchant.user_id, checkout_key=uuid.uuid4().hex,
                              status="paid" if paid else "pending_payment",
                              fulfilment="express", goods_amount=amount,
                              payable_amount=amount, paid_amount=amount if paid else 0,
                              pay_deadline=placed + dt.timedelta(minutes=30),
                              paid_at=paid, created_at=placed, updated_at=placed))
        for n, (done, amount) in enumerate(((before, 300), (first, 1200), (last, 800),
                                            (None, 5000), (after, 100))):
            session.add(PaymentRefund(out_refund_no=uuid.uuid4().hex[:32], payment_id=n + 1,
                                      amount=amount, status="succeeded" if done else "pending",
                                      succeeded_at=done, created_at=first))
        for at, delta, reason in ((before, 50, "checkin"), (first, 10, "checkin"),
                                  (last, 30, "order_completed"), (last, -25, "points_payment"),
                                  (last, -7, "expired"), (after, -100, "points_mall")):
            session.add(PointsEntry(user_id=buyer, delta=delta, balance_after=100,
                                    reason=reason, idem_key=uuid.uuid4().hex, created_at=at))


@pytest.mark.gen_test(timeout=90)
async def test_rows_count_on_their_asia_shanghai_day_to_the_microsecond(api, resources):
    admin = await api.login(role="admin")
    day = a_past_day(0)
    await write_rows_around(resources, day)
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    assert await daily.backfill(resources, before, after) == 3
    seen = await figures(api, admin, before, after)
    on = {d: seen[d.isoformat()] for d in (before, day, after)}
    assert [on[d]["new_users"] for d in (before, day, after)] == [1, 2, 1]
    assert [on[d]["likes"] for d in (before, day, after)] == [1, 3, 1]
    assert [on[d]["orders"] for d in (before, day, after)] == [2, 3, 0]
    assert [on[d]["paid_orders"] for d in (before, day, after)] == [1, 2, 1]
    assert [on[d]["gmv_fen"] for d in (before, day, after)] == [1000, 6500, 700]
    assert [on[d]["refunds"] for d in (before, day, after)] == [1, 2, 1]
    assert [on[d]["refund_fen"] for d in (before, day, after)] == [300, 2000, 100]
    assert [on[d]["points_earned"] for d in (before, day, after)] == [50, 40, 0]
    assert [on[d]["points_spent"] for d in (before, day, after)] == [0, 25, 100]  # not expiry
    assert on[day]["posts"] == 0 and on[day]["feedback"] == 0
    assert on[day]["dau"] is None  # nobody was seen that day: nothing stored
    assert on[day]["computed_at"] is not None
    only = await figures(api, admin, day, day, "gmv_fen,new_users")
    assert set(only[day.isoformat()]) == {"day", "new_users", "gmv_fen", "computed_at"}
    listed = (await api.get(f"/v1/admin/stats/daily?from={day}&to={day}",
                            token=admin.token)).ok()["metrics"]
    assert {"name": "gmv_fen", "label": "GMV（分）", "unit": "fen"} in listed
    assert [m["name"] for m in listed][:2] == ["dau", "mau"]
    # A day never computed is a row of nulls, not an error.
    empty = await figures(api, admin, after + dt.timedelta(days=1), after + dt.timedelta(days=1))
    assert empty[(after + dt.timedelta(days=1)).isoformat()]["gmv_fen"] is None


@pytest.mark.gen_test(timeout=120)
async def test_rerunning_the_job_writes_the_same_figures(api, resources, celery_worker_process):
    admin = await api.login(role="admin")
    day = a_past_day(1)
    await write_rows_around(resources, day)
    users = [10**9 + n for n in range(7)]
    await activity.record_active(resources.cache, users, day)
    first = await daily.compute_day(resources, day)
    assert first["dau"] == 7 and first["gmv_fen"] == 6500
    assert await daily.compute_day(resources, day) == first
    assert await stored(resources, day) == first
    # The admin's backfill runs the same code on the real worker: the same figures again.
    async with resources.db.session() as session, session.begin():
        await session.execute(text("UPDATE daily_stats SET value = -1 WHERE day = :d"),
                              {"d": day})
    queued = (await api.post("/v1/admin/stats/backfill", token=admin.token,
                             json={"from": str(day), "to": str(day)})).ok(202)
    assert queued == {"from": str(day), "to": str(day), "days": 1, "queued": True}

    async def restored() -> bool:
        return await stored(resources, day) == first
    await wait_until(restored, timeout=60, what="the backfill task")
    # The beat job's own pass (yesterday and today so far), twice: the same figures.
    once = await daily.recompute_recent(resources)
    assert set(once) == {(activity.shanghai_day() - dt.timedelta(days=n)).isoformat()
                         for n in (0, 1)}
    twice = await daily.recompute_recent(resources)
    assert once == twice


@pytest.mark.gen_test(timeout=90)
async def test_monthly_actives_merge_30_days_and_survive_redis_losing_them(api, resources):
    admin = await api.login(role="admin")
    day = a_past_day(2)
    days = [day - dt.timedelta(days=n) for n in range(35)]  # day first
    for n, d in enumerate(days):
        # user 1 every day; user 100+n only on day-n
        await activity.record_active(resources.cache, [1, 100 + n], d)
    await daily.backfill(resources, days[-1], day)
    kept = await stored(resources, day)
    assert kept["dau"] == 2 and kept["mau"] == 31  # user 1 and the 30 days' own users
    assert (await stored(resources, days[29]))["mau"] == 7  # its window reaches back 30 days
    assert (await stored(resources, days[34]))["mau"] == 2  # nothing recorded before it
    async with resources.db.session() as session:
        sketches = (await session.execute(select(ActiveUserSketch.day).where(
            ActiveUserSketch.day.in_(days)))).scalars().all()
    assert len(sketches) == 35  # each day's sketch is kept in the database
    # Redis loses every sketch: recomputing restores them and loses nothing.
    await resources.cache.redis.delete(*(activity.active_key(resources.cache, d) for d in days))
    assert await daily.compute_day(resources, day) == kept
    assert await resources.cache.redis.pfcount(activity.active_key(resources.cache, day)) == 2
    # A day with no sketch anywhere keeps its stored figure.
    async with resources.db.session() as session, session.begin():
        await session.execute(text("DELETE FROM active_user_sketches WHERE day = :d"),
                              {"d": days[1]})
    await resources.cache.redis.delete(activity.active_key(resources.cache, days[1]))
    computed = await daily.compute_day(resources, days[1])
    assert "dau" not in computed and "mau" not in computed
    assert (await stored(resources, days[1]))["dau"] == 2
    seen = await figures(api, admin, days[1], day, "dau,mau")
    assert seen[day.isoformat()]["mau"] == 31 and seen[days[1].isoformat()]["dau"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_requests_and_sockets_mark_their_users_active_today(api, app, base_url, resources):
    recorder = app.settings["activity"]
    rest_user, socket_user, idle = await api.login(), await api.login(), await api.login()
    await recorder.flush()  # the logins themselves carry no token: nobody recorded yet
    key = activity.active_key(resources.cache, activity.shanghai_day())
    (await api.get("/v1/users/me", token=rest_user.token)).ok()
    client = await wsclient.connect(ws_url(base_url), socket_user.token)
    try:
        await recorder.flush()
        # PFADD answers 0 for a user the sketch already holds.
        assert await resources.cache.redis.pfadd(key, rest_user.user_id) == 0
        assert await resources.cache.redis.pfadd(key, socket_user.user_id) == 0
        assert await resources.cache.redis.pfadd(key, idle.user_id) == 1
        hub = app.settings["hub"]
        await hub.report_sockets()
        live = (await api.get("/v1/admin/stats/overview",
                              token=(await api.login(role="admin")).token)).ok()["live"]
        mine = [g for g in live["gateways"] if g["gateway"] == hub.gateway_id]
        assert mine and mine[0]["connections"] >= 1 and live["connections"] >= 1
    finally:
        await client.close()
    await hub.stop()  # a stopped gateway leaves the list at once
    assert hub.gateway_id not in [g["gateway"] for g in
                                  await activity.gateway_sockets(resources.cache)]


@pytest.mark.gen_test(timeout=60)
async def test_overview_sets_today_against_yesterday_with_queues_and_dead_letters(
        api, resources):
    admin = await api.login(role="admin")
    (await api.get("/v1/users/me", token=admin.token)).ok()
    await daily.recompute_recent(resources)
    data = (await api.get("/v1/admin/stats/overview", token=admin.token)).ok()
    today = activity.shanghai_day()
    assert data["today"]["day"] == today.isoformat()
    assert data["yesterday"]["day"] == (today - dt.timedelta(days=1)).isoformat()
    assert data["today"]["new_users"] >= 1 and data["today"]["computed_at"]
    assert {"name": "feedback", "label": "用户反馈", "unit": "count"} in data["metrics"]
    queues = data["live"]["queues"]
    assert queues["broker"] == "ok" and "default" in queues["lengths"]
    assert all(isinstance(n, int) and n >= 0 for n in queues["lengths"].values())
    letters = (await api.get("/v1/admin/dead-letters", token=admin.token)).ok()
    assert data["live"]["dead_letters"]["open"] == letters["total"]
    assert isinstance(data["live"]["outbox_pending"], int)
    scraped = (await api.get("/metrics")).body.decode()
    assert f'pawhome_stats_daily{{day="today",metric="new_users"}} ' \
           f'{float(data["today"]["new_users"])}' in scraped
    assert "pawhome_dead_letters_open " in scraped
    waiting = re.search(r'^pawhome_task_queue_waiting\{queue="default"\} (\d+\.\d+)$', scraped,
                        re.MULTILINE)
    assert waiting is not None and float(waiting.group(1)) >= 0


@pytest.mark.gen_test(timeout=60)
async def test_csv_export_is_a_download_safe_to_open_in_a_spreadsheet(api, resources):
    admin = await api.login(role="admin")
    day = a_past_day(3)
    await write_rows_around(resources, day)
    await daily.compute_day(resources, day)

    async def formula(ctx: metrics.DayContext) -> int:
        return -3

    metrics.register_metric("test_formula", formula, label='=HYPERLINK("http://evil","点我")')
    try:
        await daily.compute_day(resources, day)
        reply = await api.get(f"/v1/admin/stats/daily.csv?from={day}&to={day}"
                              "&metrics=gmv_fen,new_users,test_formula", token=admin.token)
    finally:
        metrics._METRICS.pop("test_formula")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert reply.headers["Content-Disposition"] == \
        f'attachment; filename="pawhome-daily-{day}-{day}.csv"'
    assert reply.body.startswith("\ufeff".encode())
    lines = reply.body.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "day,new_users,gmv_fen,test_formula"
    assert lines[1] == '日期,新增用户,GMV（分）,"\'=HYPERLINK(""http://evil"",""点我"")"'
    assert lines[2] == f"{day},2,6500,-3"  # a number stays a number
    assert daily.csv_cell("+1+cmd|' /C calc'!A0").startswith("'")
    assert daily.csv_cell("@SUM(A1)") == "'@SUM(A1)" and daily.csv_cell("正常") == "正常"


@pytest.mark.gen_test(timeout=60)
async def test_ranges_and_metric_names_are_checked(api):
    admin = await api.login(role="admin")
    base = "/v1/admin/stats/daily"
    for path in (base, base + ".csv"):
        (await api.get(path + "?from=2026-03-02&to=2026-03-01", token=admin.token)) \
            .error(422, code=42286, field="to")
        (await api.get(path + "?from=2025-01-01&to=2026-01-02", token=admin.token)) \
            .error(422, code=42286, field="to")  # 367 days
        (await api.get(path + "?from=2025-01-01&to=2025-01-02&metrics=gmv_fen,nope",
                       token=admin.token)).error(422, field="metrics")
        (await api.get(path + "?to=2025-01-02", token=admin.token)).error(422, field="from")
        (await api.get(path + "?from=yesterday&to=2025-01-02", token=admin.token)) \
            .error(422, field="from")
    ok = (await api.get(base + "?from=2025-01-01&to=2025-12-31", token=admin.token)).ok()
    assert len(ok["days"]) == 365
    tomorrow = activity.shanghai_day() + dt.timedelta(days=1)
    (await api.post("/v1/admin/stats/backfill", token=admin.token,
                    json={"from": str(tomorrow), "to": str(tomorrow)})).error(422, code=42286)
    (await api.post("/v1/admin/stats/backfill", token=admin.token,
                    json={"from": "2020-01-01", "to": "2021-06-01"})).error(422, code=42286)


@pytest.mark.gen_test(timeout=60)
async def test_only_admins_see_statistics(api):
    user, merchant = await api.login(), await api.login(role="merchant")
    forged = jwt.encode(claims_for(user.user_id, role="admin"), "not-our-secret-" * 3, "HS256")
    for path in ROUTES:
        path = path.format(d="2025-01-01")
        for who in (user, merchant):
            (await api.get(path, token=who.token)).error(403)
        (await api.get(path)).error(401)
        (await api.get(path, token=forged)).error(401, code=40102)
    body = {"from": "2025-01-01", "to": "2025-01-01"}
    (await api.post("/v1/admin/stats/backfill", token=user.token, json=body)).error(403)
    (await api.post("/v1/admin/stats/backfill", token=forged, json=body)).error(401)


@pytest.mark.gen_test(timeout=60)
async def test_every_metric_query_reads_an_index_not_the_table(resources):
    """EXPLAIN of each statement the job runs for a day: an index range, never a full scan."""
    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "daily_stats" not in statement \
                and "active_user_sketches" not in statement:
            statements.append((statement, parameters))

    engine = resources.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await daily.compute_day(resources, a_past_day(4))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(statements) >= len(metrics.names()) - 2  # dau and mau read Redis
    async with resources.db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        cursor = await raw.driver_connection.cursor()
        for statement, parameters in statements:
            await cursor.execute("EXPLAIN " + statement, parameters)
            plan = await cursor.fetchall()
            columns = [c[0] for c in cursor.description]
            for row in plan:
                step = dict(zip(columns, row, strict=True))
                assert step["type"] != "ALL" and step["key"], (statement, step)
