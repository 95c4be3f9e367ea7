"""The embedded mode `make run` starts: run_gateway.py as its own process on a SQLite file, the
in-process Redis-compatible store and in-process tasks — no MariaDB, Redis or broker involved.

The gateway runs as a subprocess exactly as `make run` starts it (after `pawhome.platform.migrate`);
tests talk to it over HTTP and look at its SQLite file and its log.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from tornado.websocket import websocket_connect

from pawhome.platform import codec
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30


class EmbeddedGateway:
    def __init__(self, workdir: Path) -> None:
        self.database_url = f"sqlite+aiosqlite:///{workdir / 'embedded.db'}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        # As `make run` starts it: nothing of the test run's services, WeChat Pay included.
        self.env = {name: value for name, value in os.environ.items()
                    if name not in ("REDIS_PREFIX", "TASK_QUEUE_PREFIX", "RESULT_BACKEND_URL",
                                    "PAYMENT_PROVIDER")
                    and not name.startswith("WECHATPAY_")}
        self.env.update(MODE="embedded", DATABASE_URL=self.database_url, REDIS_URL="memory://",
                        BROKER_URL="", LOG_LEVEL="INFO", OUTBOX_POLL_SECONDS="0.2",
                        PYTHONUNBUFFERED="1", WECHATPAY_SIM_DIR=str(workdir / "wechatpay-sim"),
                        # the gateway's own beat (EmbeddedBeat) sends due reminders at once
                        BOOKING_REMINDER_SWEEP_SECONDS="1")
        self.proc: subprocess.Popen | None = None

    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "pawhome.platform.migrate"], cwd=ROOT, env=self.env,
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "run_gateway.py", "--port", str(self.port)], cwd=ROOT,
            env=self.env, stdout=self.stdout_path.open("wb"), stderr=self.stderr_path.open("wb"))
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"embedded gateway exited: {self.stderr_path.read_text()}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"embedded gateway did not answer within {STARTUP_SECONDS}s")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(20)

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.stderr_path.read_text(encoding="utf-8").splitlines():
            if raw.startswith("{"):
                lines.append(codec.loads(raw))
        return lines

    def run_in_its_database(self, work):
        """Run `work(session)` in a transaction on the gateway's own SQLite file."""
        from pawhome.platform.db import Database
        from settings import Settings

        async def run():
            db = Database(Settings(database_url=self.database_url))
            try:
                async with db.session() as session, session.begin():
                    return await work(session)
            finally:
                await db.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    gateway = EmbeddedGateway(tmp_path_factory.mktemp("embedded"))
    gateway.migrate()
    gateway.start()
    yield gateway
    if gateway.proc and gateway.proc.poll() is None:
        gateway.stop()


def dev_login(gateway: EmbeddedGateway, openid: str) -> dict:
    reply = httpx.post(gateway.base + "/v1/auth/dev-login", json={"openid": openid}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def test_embedded_gateway_prints_its_url_and_how_to_get_a_dev_token(embedded):
    banner = embedded.stdout_path.read_text(encoding="utf-8")
    assert f"{embedded.base}/v1" in banner
    assert f"curl -s -XPOST {embedded.base}/v1/auth/dev-login" in banner
    assert "in-process store" in banner and "SQLite" in banner


def test_dev_login_then_users_me_works_in_embedded_mode(embedded):
    login = dev_login(embedded, "embedded-" + uuid.uuid4().hex[:8])
    assert login["is_new_user"] is True
    reply = httpx.get(embedded.base + "/v1/users/me", timeout=10,
                      headers={"Authorization": f"Bearer {login['access_token']}"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"]["id"] == login["user_id"]


def test_embedded_readyz_reports_sqlite_memory_store_and_inprocess_tasks_ready(embedded):
    reply = httpx.get(embedded.base + "/readyz", timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_logout_state_lives_in_the_in_process_store(embedded):
    """Revocations need Redis; embedded mode has one in-process, so a logout takes effect."""
    login = dev_login(embedded, "embedded-" + uuid.uuid4().hex[:8])
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    logout = httpx.post(embedded.base + "/v1/auth/logout", headers=auth, timeout=10)
    assert logout.status_code == 200, logout.text
    after = httpx.get(embedded.base + "/v1/users/me", headers=auth, timeout=10)
    assert after.status_code == 401 and after.json()["code"] == 40103, after.text


def test_task_enqueued_through_the_outbox_runs_in_the_gateway_process(embedded):
    from models.platform import OutboxMessage
    from pawhome.platform.outbox import enqueue_task

    marker = "embedded-ping-" + uuid.uuid4().hex

    async def enqueue(session):
        row = enqueue_task(session, "default.ping", marker)
        await session.flush()
        return row.id

    async def still_queued(session):
        query = select(func.count(OutboxMessage.id)).where(OutboxMessage.id == row_id)
        return (await session.execute(query)).scalar_one()

    row_id = embedded.run_in_its_database(enqueue)
    deadline = time.monotonic() + 15
    while embedded.run_in_its_database(still_queued) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert embedded.run_in_its_database(still_queued) == 0, "the relay never took the row"

    # Celery's tracer logs the task's result: proof it ran here, not just left the table.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ran = [line for line in embedded.log_lines()
               if line["logger"] == "celery.app.trace" and marker in line["msg"]]
        if ran:
            break
        time.sleep(0.1)
    assert ran and "succeeded" in ran[0]["msg"], "default.ping did not run in-process"


def test_discovery_feeds_read_posts_from_sqlite(embedded):
    """The feeds' first page runs precompiled statements (db.Prepared): on SQLite too, JSON
    columns come out as arrays, times as ISO strings, topics joined, and the cursor works."""
    from models.community import Post, PostTopic, Topic

    login = dev_login(embedded, "embedded-" + uuid.uuid4().hex[:8])
    marker = uuid.uuid4().hex[:8]

    async def seed(session):
        topic = Topic(name="柯基" + marker)
        session.add(topic)
        posts = [Post(author_id=login["user_id"], text=f"{marker} {n}", status="visible",
                      visibility="public", media_kind="none", media_ids=[], hot_score=n,
                      pet_types=["dog", "cat"][: n % 3], pet_ids=[n] if n % 2 else [])
                 for n in range(3)]
        session.add_all(posts)
        await session.flush()
        session.add(PostTopic(post_id=posts[2].id, topic_id=topic.id))
        return [p.id for p in posts]

    ids = embedded.run_in_its_database(seed)
    first = httpx.get(embedded.base + "/v1/posts?sort=latest&limit=2", timeout=10)
    assert first.status_code == 200, first.text
    page = first.json()["data"]
    assert [p["id"] for p in page["items"]] == [ids[2], ids[1]]
    newest, second = page["items"]
    assert newest["topics"] == ["柯基" + marker] and second["topics"] == []
    assert newest["pet_types"] == ["dog", "cat"] and newest["pet_ids"] == []
    assert second["pet_types"] == ["dog"] and second["pet_ids"] == [1]
    assert newest["media_ids"] == [] and newest["author"]["id"] == login["user_id"]
    assert newest["created_at"].startswith("20") and "T" in newest["created_at"]
    assert page["nextCursor"]
    rest = httpx.get(embedded.base + "/v1/posts", timeout=10,
                     params={"sort": "latest", "limit": 2, "cursor": page["nextCursor"]})
    assert rest.status_code == 200, rest.text
    assert rest.json()["data"]["items"][0]["id"] == ids[0]
    hot = httpx.get(embedded.base + "/v1/posts?sort=hot&limit=3", timeout=10)
    assert hot.status_code == 200, hot.text
    assert [p["id"] for p in hot.json()["data"]["items"]][:1] == [ids[2]]


def test_first_direct_message_and_notification_reach_plain_sockets_within_200_ms(embedded):
    """A newcomer's first chat: two fresh users on plain WebSocket clients that send no
    `resume`. The message reaches the recipient's socket within 200 ms of the send, and a
    notification (a follow) the followee's, as on a real Redis: nothing waits for a relay
    poll or for the resume grace (a user without a stream has nothing to replay)."""
    alice = dev_login(embedded, "embedded-" + uuid.uuid4().hex[:8])
    bob = dev_login(embedded, "embedded-" + uuid.uuid4().hex[:8])
    base = f"ws://127.0.0.1:{embedded.port}/v1/ws?token="

    async def next_frame(ws, frame_type: str) -> dict:
        while True:
            frame = codec.loads(await asyncio.wait_for(ws.read_message(), 5))
            if frame["type"] == frame_type:
                return frame

    async def chat_and_follow() -> tuple[float, float, dict]:
        a = await websocket_connect(base + alice["access_token"])
        b = await websocket_connect(base + bob["access_token"])
        for ws in (a, b):
            assert (await next_frame(ws, "hello"))["epoch"] is None  # fresh users
        sent = time.monotonic()
        await a.write_message(codec.dumps({
            "type": "chat.send", "ref": "r1", "to_user_id": bob["user_id"], "kind": "text",
            "text": "hello from the first chat", "client_msg_id": uuid.uuid4().hex}).decode())
        message = await next_frame(b, "chat.message")
        delivered = time.monotonic() - sent
        async with httpx.AsyncClient(base_url=embedded.base, timeout=10) as http:
            sent = time.monotonic()
            followed = await http.post(f"/v1/users/{alice['user_id']}/follow",
                                       headers={"Authorization": f"Bearer {bob['access_token']}"})
            assert followed.status_code == 200, followed.text
            await next_frame(a, "notify.new")
            notified = time.monotonic() - sent
        a.close()
        b.close()
        return delivered, notified, message

    delivered, notified, message = asyncio.run(chat_and_follow())
    assert message["data"]["content"] == {"text": "hello from the first chat"}
    assert message["eid"] == 1
    assert delivered < 0.2, f"the message took {delivered * 1000:.0f} ms"
    assert notified < 0.2, f"the notification took {notified * 1000:.0f} ms (request included)"


def test_a_newcomer_shops_two_demo_shops_and_pays_in_make_run(embedded):
    """`make run` seeds the demo shops; a buyer searches, fills the cart from both shops,
    checks out one by pick-up and one by local delivery, pays with the simulated WeChat Pay
    (the real notify path), and the merchant ships while the buyer watches."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    buyer = dev_login(embedded, "demo-user-1")["access_token"]
    seller = dev_login(embedded, "demo-merchant-2")["access_token"]
    auth = {"Authorization": f"Bearer {buyer}"}

    def call(method: str, path: str, token: str = buyer, key: str = "", **kw) -> dict:
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        reply = httpx.request(method, embedded.base + path, timeout=15, headers=headers, **kw)
        assert reply.status_code in (200, 201), (path, reply.text)
        return reply.json()["data"]

    deadline = time.monotonic() + 10
    while True:  # the demo products are indexed by in-process tasks
        found = httpx.get(embedded.base + "/v1/products/search", params={"q": "猫粮"},
                          headers=auth, timeout=10).json()["data"]
        if found["items"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found["items"], "the demo catalogue is not searchable"
    listed = call("GET", "/v1/products", params={"limit": 50})
    assert listed["total"] >= 20
    shops: dict[int, dict] = {}
    for card in listed["items"]:
        shops.setdefault(card["merchant"]["id"] if "merchant" in card
                         else card["merchant_id"], card)
    assert len(shops) == 2
    for card in shops.values():
        detail = call("GET", f"/v1/products/{card['id']}")
        call("POST", "/v1/cart/items", json={"sku_id": detail["skus"][0]["id"], "quantity": 1})
    address = call("GET", "/v1/addresses")["items"][0]
    first, second = sorted(shops)
    points = call("GET", f"/v1/merchants/{first}")["pickup_points"]
    body = {"address_id": address["id"], "shipments": [
        {"merchant_id": first, "fulfilment": "pickup", "pickup_point_id": points[0]["id"]}]}
    preview = call("POST", "/v1/orders/preview", json=body)
    assert preview["purchasable"], preview["problems"]
    placed = call("POST", "/v1/orders", json=body, key="run-1")
    assert len(placed["orders"]) == 2
    for order in placed["orders"]:
        assert call("POST", f"/v1/orders/{order['id']}/pay")["package"].startswith("prepay_id=")
        confirmed = call("POST", f"/v1/payments/simulated/{order['order_no']}/confirm")
        assert confirmed["payment"]["status"] == "paid"
        assert call("GET", f"/v1/orders/{order['id']}")["status"] == "paid"
    shipped = next(o for o in placed["orders"] if o["merchant_id"] == second)
    call("POST", f"/v1/merchant/orders/{shipped['id']}/ship", token=seller,
         json={"carrier": "闪送", "tracking_no": "SS1"})
    call("POST", f"/v1/orders/{shipped['id']}/confirm-receipt")
    mine = call("GET", "/v1/orders")
    assert mine["counts"]["completed"] == 1 and mine["counts"]["paid"] == 1


def test_a_newcomer_claims_a_demo_coupon_and_checkout_picks_it_in_make_run(embedded):
    """The demo coupons on SQLite: a new user claims the new-user coupon and the code
    coupon, and the checkout preview takes the better one off by itself."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    buyer = dev_login(embedded, "demo-newcomer-" + uuid.uuid4().hex[:8])["access_token"]

    def call(method: str, path: str, status: int = 200, **kw) -> dict:
        reply = httpx.request(method, embedded.base + path, timeout=15, headers={
            "Authorization": f"Bearer {buyer}", "Idempotency-Key": uuid.uuid4().hex}, **kw)
        assert reply.status_code == status, (path, reply.text)
        return reply.json()["data"]

    offered = call("GET", "/v1/coupons/available")["claimable"]
    welcome = next(t for t in offered if t["new_users_only"])
    claimed = call("POST", f"/v1/coupons/{welcome['id']}/claim", 201)
    call("POST", "/v1/coupons/claim-code", 201, json={"code": "pawhome"})
    wallet = call("GET", "/v1/coupons/wallet")
    assert wallet["total"] == 2
    product = call("GET", "/v1/products", params={"limit": 50})["items"][0]
    sku = call("GET", f"/v1/products/{product['id']}")["skus"][0]
    address = call("POST", "/v1/addresses", 201, json={
        "contact_name": "新人", "phone": "13912345678", "province": "广东省", "city": "深圳市",
        "district": "南山区", "detail": "科技园南路 88 号"})
    preview = call("POST", "/v1/orders/preview", json={
        "items": [{"sku_id": sku["id"], "quantity": 1}], "address_id": address["id"]})
    chosen = preview["orders"][0]["coupon"]
    assert chosen is not None and chosen["saving"] >= 500, preview["orders"][0]
    assert {o["id"] for o in preview["orders"][0]["coupon_options"]} >= {chosen["id"]}
    assert claimed["id"] in {o["id"] for o in preview["orders"][0]["coupon_options"]}


def test_a_newcomer_joins_the_demo_group_and_pays_in_make_run(embedded):
    """The demo group-buy on SQLite: the home's group-buy slot shows the demo product (no
    product picked: the products with active rules), its open group waits for two more; a
    newcomer joins at the group price and pays (the simulated WeChat Pay): 2 of 3 paid, the
    order waits for the group."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    buyer = dev_login(embedded, "demo-newcomer-" + uuid.uuid4().hex[:8])["access_token"]

    def call(method: str, path: str, status: int = 200, **kw) -> dict:
        reply = httpx.request(method, embedded.base + path, timeout=15, headers={
            "Authorization": f"Bearer {buyer}", "Idempotency-Key": uuid.uuid4().hex}, **kw)
        assert reply.status_code == status, (path, reply.text)
        return reply.json()["data"]

    home = call("GET", "/v1/home/mall")
    product_ids = [card["id"] for card in home["slots"]["group_buy"]]
    offers = [call("GET", "/v1/group-buys", params={"product_id": p}) for p in product_ids]
    offer = next(o for o in offers if o["groups"])
    group, rule = offer["groups"][0], offer["rules"][0]
    assert (group["status"], group["paid_count"], group["size"]) == ("open", 1, 3)
    address = call("POST", "/v1/addresses", 201, json={
        "contact_name": "新人", "phone": "13912345678", "province": "广东省", "city": "深圳市",
        "district": "南山区", "detail": "科技园南路 88 号"})
    placed = call("POST", "/v1/orders", 201, json={
        "items": [{"sku_id": rule["sku_id"], "quantity": 1}], "address_id": address["id"],
        "group_buy": {"sku_id": rule["sku_id"], "group_id": group["id"]}})
    order = placed["orders"][0]
    assert call("POST", f"/v1/orders/{order['id']}/pay")["package"].startswith("prepay_id=")
    call("POST", f"/v1/payments/simulated/{order['order_no']}/confirm")
    assert call("GET", f"/v1/orders/{order['id']}")["status"] == "paid_waiting_group"
    page = call("GET", f"/v1/group-buys/{group['id']}")
    assert (page["status"], page["paid_count"], page["joined"]) == ("open", 2, True)


def test_embedded_gateway_stops_cleanly_on_sigterm(embedded):
    assert embedded.stop() == 0
    assert any(line["msg"] == "gateway stopping" for line in embedded.log_lines())




def test_the_embedded_gateway_runs_the_beats_interval_jobs_itself_and_only_there():
    import run_gateway
    from settings import Settings

    jobs = run_gateway.embedded_beat_jobs(Settings(mode="embedded", broker_url=""))
    assert jobs["default.send_booking_reminders"] == 60.0
    assert jobs["default.release_expired_holds"] > 0 and "payments.query_unpaid" in jobs
    assert not set(run_gateway.EMBEDDED_BEAT_SKIPS) & set(jobs)  # relayed anyway; no WeChat
    assert "default.expire_points" not in jobs  # crontab jobs wait for a real beat
    assert run_gateway.embedded_beat_jobs(
        Settings(mode="embedded", broker_url="redis://127.0.0.1:6379/1")) == {}
    assert run_gateway.embedded_beat_jobs(Settings(mode="development", broker_url="")) == {}
