"""The catalogue in embedded mode (`make run`): SQLite, the in-process store and in-process
tasks. A merchant's product goes on sale through the in-process review and is listed, opened,
searched, collected and left as a footprint — the SQL and the cache of every step on SQLite."""
from __future__ import annotations

import io
import time
import uuid
from urllib.parse import urlsplit

import httpx
from PIL import Image

from tests.test_embedded import EmbeddedGateway, embedded  # noqa: F401  (the fixture)


def _login(gateway: EmbeddedGateway, role: str = "user") -> dict[str, str]:
    reply = httpx.post(gateway.base + "/v1/auth/dev-login", timeout=10, json={
        "openid": f"embedded-{role}-{uuid.uuid4().hex[:8]}", "role": role})
    assert reply.status_code == 200, reply.text
    return {"Authorization": "Bearer " + reply.json()["data"]["access_token"]}


def _call(gateway: EmbeddedGateway, method: str, path: str, who: dict[str, str] | None = None,
          expect: int = 200, **kwargs) -> dict:
    reply = httpx.request(method, gateway.base + path, headers=who or {}, timeout=10, **kwargs)
    assert reply.status_code == expect, f"{method} {path}: {reply.status_code} {reply.text}"
    return reply.json().get("data")


def _until(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout}s")


def _ready_image(gateway: EmbeddedGateway, who: dict[str, str]) -> int:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    data = out.getvalue()
    started = _call(gateway, "POST", "/v1/media", who, expect=201,
                    json={"kind": "image", "size": len(data), "content_type": "image/jpeg"})
    # The URL names PUBLIC_BASE_URL; this gateway listens on a port of its own.
    parts = urlsplit(started["upload_url"])
    target = gateway.base + parts.path + (f"?{parts.query}" if parts.query else "")
    httpx.put(target, content=data, headers=started.get("headers") or {},
              timeout=10).raise_for_status()
    _call(gateway, "POST", f"/v1/media/{started['media_id']}/complete", who)
    _until(lambda: _call(gateway, "GET", f"/v1/media/{started['media_id']}",
                         who)["status"] == "ready", "the image processed")
    return int(started["media_id"])


def test_a_product_goes_on_sale_and_is_browsed_on_sqlite(embedded):
    admin, merchant, buyer = _login(embedded, "admin"), _login(embedded, "merchant"), \
        _login(embedded)
    tag = "zz" + uuid.uuid4().hex[:8]
    parent = _call(embedded, "POST", "/v1/admin/categories", admin, expect=201,
                   json={"name": "主粮" + tag})
    child = _call(embedded, "POST", "/v1/admin/categories", admin, expect=201,
                  json={"name": "猫粮" + tag, "parent_id": parent["id"]})
    product = _call(embedded, "POST", "/v1/merchant/products", merchant, expect=201, json={
        "name": f"{tag} 全价猫粮", "media_ids": [_ready_image(embedded, merchant)],
        "category_id": child["id"], "pet_types": ["cat"]})
    pid = product["id"]
    skus = _call(embedded, "PUT", f"/v1/merchant/products/{pid}/skus", merchant, json={
        "spec_attrs": [{"name": "规格", "values": ["1kg", "5kg"]}],
        "skus": [{"spec_values": ["1kg"], "price": 5900, "stock": 3},
                 {"spec_values": ["5kg"], "price": 25900, "stock": 1}]})["skus"]
    _call(embedded, "POST", f"/v1/merchant/products/{pid}/on-sale", merchant)
    _until(lambda: _call(embedded, "GET", f"/v1/merchant/products/{pid}",
                         merchant)["status"] == "on_sale", "the review's verdict")

    listed = _call(embedded, "GET", f"/v1/products?category_id={parent['id']}&pet_type=cat")
    assert [p["id"] for p in listed["items"]] == [pid] and listed["items"][0]["price_min"] == 5900
    _call(embedded, "POST", f"/v1/merchant/skus/{skus[0]['id']}/stock-adjustments",
          {**merchant, "Idempotency-Key": "embedded-restock"}, expect=201,
          json={"delta": 4, "reason": "到货"})
    page = _call(embedded, "GET", f"/v1/products/{pid}", buyer)
    assert page["skus"][0]["stock"] == 7 and page["favorited"] is False
    assert _call(embedded, "POST", f"/v1/favorites/products/{pid}", buyer)["favorite_count"] == 1
    assert _call(embedded, "GET", f"/v1/products/{pid}", buyer)["favorited"] is True
    assert [p["id"] for p in _call(embedded, "GET", "/v1/favorites/products",
                                   buyer)["items"]] == [pid]
    assert [p["id"] for p in _call(embedded, "GET", "/v1/users/me/footprints",
                                   buyer)["items"]] == [pid]
    found = _until(lambda: _call(embedded, "GET", f"/v1/products/search?q={tag}+猫粮")["items"],
                   "the product in search")
    assert [p["id"] for p in found] == [pid] and "<em>" in found[0]["name_html"]
    _call(embedded, "POST", f"/v1/merchant/products/{pid}/off-sale", merchant)
    _call(embedded, "GET", f"/v1/products/{pid}", expect=404)
    assert _call(embedded, "GET", f"/v1/products?category_id={parent['id']}")["items"] == []
