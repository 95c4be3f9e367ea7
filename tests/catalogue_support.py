"""Shared set-up of the catalogue tests (and of any test that needs something to buy):
merchants and admins with tokens made straight in the database, ready media rows, and a
category and a product put on sale through the API, its review run in the test.

    merchant = await make_seller(resources)
    product = await product_on_sale(api, resources, merchant, skus=[{"price": 1990}])
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from models.base import utcnow
from models.mall import Product
from models.media import Media
from models.users import User, UserSettings
from pawhome.identity import tokens
from pawhome.mall import catalogue_cache
from pawhome.moderation import product_reviews
from tests.helpers import Session
from tests.media_helpers import worker_variants

# One admin per test run serves every catalogue test: each admin made is told of payment
# alarms (pawhome/payments/alerts.py tells the first few by id), and a run that made
# dozens would push the admins of other tests out of that list.
_ADMINS: dict[str, Session] = {}


async def make_seller(resources: Any, role: str = "merchant", nickname: str = "") -> Session:
    """A user of `role` (merchant, or the run's one admin) with an access token, recently
    logged in (so WeChat content checks run for their openid)."""
    if role == "admin" and not nickname:
        found = _ADMINS.get(resources.settings.database_url)
        if found is None:
            found = _ADMINS[resources.settings.database_url] = \
                await make_seller(resources, role, nickname="catalogue-admin")
        return found
    async with resources.db.session() as session, session.begin():
        user = User(openid="t-" + uuid.uuid4().hex[:24],
                    nickname=nickname or f"{role}-{uuid.uuid4().hex[:6]}", role=role,
                    status="active", last_login_at=utcnow())
        session.add(user)
        await session.flush()
        session.add(UserSettings(user_id=user.id, notification_prefs={}, privacy_prefs={}))
        user_id = user.id
    token, _ = tokens.issue_access_token(resources.settings, user_id, role, uuid.uuid4().hex)
    return Session(user_id, token, "", "")


async def ready_media(resources: Any, owner_id: int, kind: str = "image",
                      moderation: str = "pass", status: str = "ready") -> int:
    """A media row as the media worker leaves it (variants made); `moderation` "pass" as if
    its image check had already answered."""
    prefix = f"t/{uuid.uuid4().hex}/"
    variants = worker_variants(prefix)
    if kind == "video":
        variants["video.mp4"] = {"key": prefix + "video.mp4", "width": 640, "height": 480,
                                 "content_type": "video/mp4"}
    async with resources.db.session() as session, session.begin():
        media = Media(owner_id=owner_id, kind=kind, status=status,
                      storage_key=prefix + "original", moderation=moderation,
                      variants=variants if status == "ready" else {}, width=1080, height=810)
        session.add(media)
        await session.flush()
        return media.id


async def make_category(api: Any, admin: Session, name: str | None = None,
                        parent_id: int | None = None, **fields: Any) -> dict[str, Any]:
    body = {"name": name or "类目" + uuid.uuid4().hex[:6], "parent_id": parent_id, **fields}
    return (await api.post("/v1/admin/categories", json=body, token=admin.token)).ok(201)


def one_sku(price: int = 1990, stock: int = 10, **fields: Any) -> dict[str, Any]:
    return {"spec_values": [], "price": price, "stock": stock, **fields}


async def make_product(api: Any, resources: Any, merchant: Session, category_id: int | None,
                       skus: list[dict[str, Any]] | None = None,
                       spec_attrs: list[dict[str, Any]] | None = None,
                       **fields: Any) -> dict[str, Any]:
    """A draft product with one ready image of the merchant's and its SKU set."""
    if "media_ids" not in fields:
        fields["media_ids"] = [await ready_media(resources, merchant.user_id)]
    body = {"name": "冻干鸡肉粒", "subtitle": "猫狗通用零食", "description": "高蛋白",
            "category_id": category_id, "pet_types": ["cat", "dog"], **fields}
    product = (await api.post("/v1/merchant/products", json=body, token=merchant.token)).ok(201)
    return (await api.put(f"/v1/merchant/products/{product['id']}/skus", json={
        "spec_attrs": spec_attrs or [], "skus": skus or [one_sku()]},
        token=merchant.token)).ok()


async def review(resources: Any, product_id: int) -> str:
    """What the moderation task does for a product in review (run here, not by a worker).

    A test worker running in this process may take the same queued task and decide first:
    then this call finds the verdict and returns, while that worker's cache drop (after its
    commit) may still be on its way. So a verdict this call did not see being made waits for
    the list generation to move — which also fails, after 10 s, if no drop ever comes."""
    cache = resources.cache
    generation_key = catalogue_cache.list_generation_key(cache)
    before = await cache.redis.get(generation_key)
    async with resources.db.session() as session:
        product = await session.get(Product, product_id)
        was_reviewing = product is not None and product.status == "reviewing"
    status = await product_reviews.review_product(resources, product_id)
    if was_reviewing and status != "reviewing":
        deadline = time.monotonic() + 10
        while await cache.redis.get(generation_key) == before:
            assert time.monotonic() < deadline, "the verdict dropped no cached list"
            await asyncio.sleep(0.02)
    return status


async def product_on_sale(api: Any, resources: Any, merchant: Session,
                          category_id: int | None = None, **fields: Any) -> dict[str, Any]:
    """A product put on sale and passed by moderation (the fake WeChat passes clean text):
    returns the merchant's view of it. A category is made if none is given."""
    if category_id is None:
        admin = await make_seller(resources, "admin")
        category_id = (await make_category(api, admin))["id"]
    product = await make_product(api, resources, merchant, category_id, **fields)
    submitted = (await api.post(f"/v1/merchant/products/{product['id']}/on-sale",
                                token=merchant.token)).ok()
    assert submitted["status"] == "reviewing", submitted
    assert await review(resources, product["id"]) == "on_sale"
    return (await api.get(f"/v1/merchant/products/{product['id']}", token=merchant.token)).ok()
