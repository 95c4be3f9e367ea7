"""The growth half of the mall as a buyer meets it in `make run` (embedded mode: SQLite, the
in-process store and tasks, the simulated WeChat Pay), on the demo data: claim a coupon by
its code, check out with the coupon and part of the payable paid with points, pay, receive
and review the goods (the review moderated in-process, then shown on the product), and buy
a virtual item with points that lands in the inventory; two newcomers fill the demo
group-buy watching it live on their sockets, and another group runs out of time and refunds
itself. Issue 11's "done when"."""
from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import uuid

import httpx
from sqlalchemy import update
from tornado.websocket import websocket_connect

from models.base import utcnow
from models.groupbuy import GroupBuy
from models.platform import OutboxMessage
from pawhome.platform import codec
from tests.test_embedded import ROOT, EmbeddedGateway, dev_login, embedded  # noqa: F401
from tests.test_mall_catalogue_embedded import _until as until


class Caller:
    def __init__(self, gateway: EmbeddedGateway, openid: str) -> None:
        self.gateway = gateway
        self.token = dev_login(gateway, openid)["access_token"]

    def __call__(self, method: str, path: str, status: int = 200, **kw) -> dict:
        reply = httpx.request(method, self.gateway.base + path, timeout=15, headers={
            "Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex}, **kw)
        assert reply.status_code == status, (method, path, reply.status_code, reply.text)
        return reply.json()["data"]


def test_a_demo_buyer_uses_a_coupon_and_points_reviews_and_redeems_in_make_run(embedded):
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    buyer = Caller(embedded, "demo-user-1")
    admin = Caller(embedded, "demo-admin")
    start = buyer("GET", "/v1/points")["balance"]
    assert start >= 1000, "the demo users start with points"

    # A coupon by its code (满30减5), then a product of 59.00 or more with its coupon picked.
    coupon = buyer("POST", "/v1/coupons/claim-code", 201, json={"code": "PAWHOME"})
    cards = buyer("GET", "/v1/products", params={"limit": 50, "sort": "price_asc"})["items"]
    card = next(c for c in cards if c["price_min"] >= 5900 and not c.get("points_price"))
    sku = next(s for s in buyer("GET", f"/v1/products/{card['id']}")["skus"] if s["stock"])
    address = buyer("GET", "/v1/addresses")["items"][0]
    body = {"items": [{"sku_id": sku["id"], "quantity": 1}], "address_id": address["id"],
            "points": 1000}
    preview = buyer("POST", "/v1/orders/preview", json=body)
    assert preview["purchasable"], preview["problems"]
    planned = preview["orders"][0]
    assert planned["coupon"] is not None
    placed = buyer("POST", "/v1/orders", 201, json=body)["orders"][0]
    order = buyer("GET", f"/v1/orders/{placed['id']}")
    codes = {line["code"]: line for line in order["price_breakdown"]}
    assert codes["points"]["points"] == 1000 and codes["points"]["amount"] == -1000
    assert codes["coupon"]["amount"] < 0
    goods = sum(line["amount"] for line in order["price_breakdown"] if line["amount"] > 0)
    assert order["payable_amount"] == goods + codes["points"]["amount"] \
        + codes["coupon"]["amount"]
    assert buyer("GET", "/v1/points")["balance"] == start - 1000
    wallet = buyer("GET", "/v1/coupons/wallet", params={"state": "used"})
    assert coupon["id"] not in {c["id"] for c in wallet["items"]}  # held, paid below

    # Pay through the simulated WeChat Pay (the real notify path), then receive.
    assert buyer("POST", f"/v1/orders/{placed['id']}/pay")["package"].startswith("prepay_id=")
    buyer("POST", f"/v1/payments/simulated/{placed['order_no']}/confirm")
    assert buyer("GET", f"/v1/orders/{placed['id']}")["status"] == "paid"
    wallet = buyer("GET", "/v1/coupons/wallet", params={"state": "used"})
    assert coupon["id"] in {c["id"] for c in wallet["items"]}
    admin("POST", f"/v1/merchant/orders/{placed['id']}/ship",
          json={"carrier": "顺丰", "tracking_no": "SF100"})
    buyer("POST", f"/v1/orders/{placed['id']}/confirm-receipt")

    # A review of the line: moderated in-process, then on the product with its rating.
    line = order["items"][0]
    text = f"猫咪很爱吃 {uuid.uuid4().hex[:6]}"
    buyer("POST", f"/v1/orders/{placed['id']}/reviews", 201,
          json={"item_id": line["id"], "rating": 5, "text": text})
    shown = until(lambda: [r for r in buyer("GET", f"/v1/products/{card['id']}/reviews")[
        "items"] if r["text"] == text], "the review on the product")
    assert shown[0]["rating"] == 5
    assert buyer("GET", f"/v1/products/{card['id']}")["rating"]["count"] >= 1

    # A virtual item of the points mall: paid with points only, in the inventory at once.
    before = buyer("GET", "/v1/points")["balance"]
    goods = buyer("GET", "/v1/products", params={"points": "true", "limit": 50})["items"]
    toy, toy_sku = next((c, sku) for c in goods if c["kind"].startswith("virtual_")
                        for sku in buyer("GET", f"/v1/products/{c['id']}")["skus"]
                        if 0 < sku["points_price"] <= before)
    bought = buyer("POST", "/v1/orders", 201, json={
        "items": [{"sku_id": toy_sku["id"], "quantity": 1}],
        "redeem_sku_ids": [toy_sku["id"]]})["orders"][0]
    assert bought["payable_amount"] == 0
    assert buyer("GET", f"/v1/orders/{bought['id']}")["status"] == "completed"
    inventory = buyer("GET", "/v1/inventory")["items"]
    assert any(i["product_id"] == toy["id"] and i["quantity"] >= 1 for i in inventory)
    assert buyer("GET", "/v1/points")["balance"] == before - toy_sku["points_price"]
    spent = buyer("GET", "/v1/points/ledger", params={"direction": "spent"})["items"]
    assert {"points_payment", "points_mall"} <= {row["reason"] for row in spent}


def test_two_newcomers_fill_the_demo_group_live_and_an_unfilled_one_refunds_itself(embedded):
    """The demo group (3 seats, its opener paid) filled by two newcomers who watch it on
    their sockets; then a group a third newcomer opens runs out of time unfilled: its order is
    refunded through the payments flow (the simulated WeChat settles the refund) and the
    stock comes back."""
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=120)
    first, second, third = (Caller(embedded, "demo-newcomer-" + uuid.uuid4().hex[:8])
                            for _ in range(3))
    home = first("GET", "/v1/home/mall")
    offers = [first("GET", "/v1/group-buys", params={"product_id": card["id"]})
              for card in home["slots"]["group_buy"]]
    offer = next(o for o in offers if o["groups"])
    group, rule = offer["groups"][0], offer["rules"][0]
    assert (group["status"], group["paid_count"], group["size"]) == ("open", 1, 3)
    addresses = {id(who): who("POST", "/v1/addresses", 201, json={
        "contact_name": "新人", "phone": "13912345678", "province": "广东省", "city": "深圳市",
        "district": "南山区", "detail": "科技园南路 88 号"})["id"] for who in (first, second, third)}

    def group_order(who: Caller, group_id: int | None) -> dict:
        order = who("POST", "/v1/orders", 201, json={
            "items": [{"sku_id": rule["sku_id"], "quantity": 1}],
            "address_id": addresses[id(who)],
            "group_buy": {"sku_id": rule["sku_id"], "group_id": group_id}})["orders"][0]
        lines = {line["code"]: line["amount"]
                 for line in who("GET", f"/v1/orders/{order['id']}")["price_breakdown"]}
        assert lines["goods"] + lines["group_buy"] == rule["group_price"], lines
        who("POST", f"/v1/orders/{order['id']}/pay")
        who("POST", f"/v1/payments/simulated/{order['order_no']}/confirm")
        return order

    async def fill_live() -> list[list[dict]]:
        base = f"ws://127.0.0.1:{embedded.port}/v1/ws?token="
        sockets = [await websocket_connect(base + who.token) for who in (first, second)]
        seen: list[list[dict]] = [[], []]

        async def until_frame(index: int, check) -> dict:
            while True:
                frame = codec.loads(await asyncio.wait_for(sockets[index].read_message(), 10))
                seen[index].append(frame)
                if check(frame):
                    return frame

        try:
            for index, sock in enumerate(sockets):
                await sock.write_message(codec.dumps(
                    {"type": "sub", "topic": f"group:{group['id']}"}).decode())
                await until_frame(index, lambda f: f["type"] == "sub.ok")
            for who in (first, second):
                await asyncio.to_thread(group_order, who, group["id"])
            for index in range(2):
                await until_frame(index, lambda f: f["type"] == "group.progress"
                                  and f["data"]["action"] == "fill")
        finally:
            for sock in sockets:
                sock.close()
        return seen

    seen = asyncio.run(fill_live())
    for frames in seen:  # both watched every step: each join and payment, then the fill
        progress = [f["data"] for f in frames if f["type"] == "group.progress"]
        assert [(p["action"], p["paid_count"]) for p in progress] == [
            ("member_joined", 1), ("member_paid", 2), ("member_joined", 2), ("fill", 3)]
        assert progress[-1]["status"] == "filled" and progress[-1]["paid_count"] == 3
    page = first("GET", f"/v1/group-buys/{group['id']}")
    assert (page["status"], page["paid_count"]) == ("filled", 3)
    mine = first("GET", "/v1/orders")["items"]
    assert [o["status"] for o in mine] == ["paid"]  # out of waiting: it ships like any order

    # Another group runs out of time: its paid member is refunded, the stock comes back.
    stock_before = next(s["stock"] for s in third("GET", f"/v1/products/{rule['product_id']}")[
        "skus"] if s["id"] == rule["sku_id"])
    order = group_order(third, None)
    assert third("GET", f"/v1/orders/{order['id']}")["status"] == "paid_waiting_group"
    lonely = third("GET", "/v1/group-buys/mine")["items"][0]["group"]

    async def time_runs_out(session) -> None:
        now = utcnow()
        await session.execute(update(GroupBuy).where(GroupBuy.id == lonely["id"]).values(
            expires_at=now - dt.timedelta(seconds=1)))
        await session.execute(update(OutboxMessage).where(
            OutboxMessage.name == "default.expire_group_buy").values(available_at=now))

    embedded.run_in_its_database(time_runs_out)
    until(lambda: third("GET", f"/v1/orders/{order['id']}")["status"] == "refunded",
          "the unfilled group's order refunded", timeout=30)
    assert third("GET", f"/v1/group-buys/{lonely['id']}")["status"] in ("expired", "failed")
    refunded = third("GET", f"/v1/orders/{order['id']}")
    assert refunded["refunded_amount"] == refunded["paid_amount"] == order["payable_amount"]
    stock_after = next(s["stock"] for s in third("GET", f"/v1/products/{rule['product_id']}")[
        "skus"] if s["id"] == rule["sku_id"])
    assert stock_after == stock_before
