"""The growth half of the mall as a buyer meets it in `make run` (embedded mode: SQLite, the
in-process store and tasks, the simulated WeChat Pay), on the demo data: claim a coupon by
its code, check out with the coupon and part of the payable paid with points, pay, receive
and review the goods (the review moderated in-process, then shown on the product), and buy
a virtual item with points that lands in the inventory. Issue 11's "done when"; the
group-buy part is in tests/test_groupbuy*.py."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx

from tests.test_embedded import ROOT, EmbeddedGateway, dev_login, embedded  # noqa: F401


class Caller:
    def __init__(self, gateway: EmbeddedGateway, openid: str) -> None:
        self.gateway = gateway
        self.token = dev_login(gateway, openid)["access_token"]

    def __call__(self, method: str, path: str, status: int = 200, **kw) -> dict:
        reply = httpx.request(method, self.gateway.base + path, timeout=15, headers={
            "Authorization": f"Bearer {self.token}", "Idempotency-Key": uuid.uuid4().hex}, **kw)
        assert reply.status_code == status, (method, path, reply.status_code, reply.text)
        return reply.json()["data"]


def until(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s")


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
