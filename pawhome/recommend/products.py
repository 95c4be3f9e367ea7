"""'Recommended for you' products: products on sale ranked for one user from the same
signals as the post feed (the pet types of their pets and of posts they liked) and from what
they did in the mall (favorites, browse footprints, purchases: a category affinity).

The ranking (ids only) is cached per user for RECOMMEND_PRODUCTS_SECONDS; the cards made
from it are read with the public catalogue's rule (on sale, not deleted) and cached as long,
under the catalogue's list generation, so a product taken off sale disappears at once.
Cards are the mall's (`product_rendering.cards`), the same shape as the product list.
docs/recommendations.md.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any, cast

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, OrderItem, Product, ProductFavorite, ProductView
from pawhome.mall import catalogue_cache
from pawhome.mall.product_rendering import cards
from pawhome.platform import codec
from pawhome.platform.cache import Cache
from pawhome.platform.resources import Resources
from pawhome.recommend import signals

WEIGHTS = {
    "pet_type": 3.0,  # made for a pet type the user has or engages with
    "category": 2.0,  # in a category the user bought, collected or browsed
    "popular": 1.0,  # sales, log-scaled against the best seller among the candidates
    "rating": 0.5,  # average rating / 5, once it has ratings
}
# A category counts for these weights per purchase, favorite, footprint.
PURCHASE_WEIGHT, FAVORITE_WEIGHT, FOOTPRINT_WEIGHT = 3.0, 2.0, 1.0
RECENT_PURCHASES = 50
RECENT_FAVORITES = 50
RECENT_FOOTPRINTS = 50
BOUGHT_RECENTLY_DAYS = 30  # a product bought this recently is not recommended again
BEST_SELLERS = 200
PER_CATEGORY = 50
TOP_CATEGORIES = 3
RANKED_KEPT = 100
MAX_RECOMMENDED = 50


class RecommendedProductsQuery(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}
    limit: int = Field(10, ge=1, le=MAX_RECOMMENDED)


def ranking_key(cache: Cache, user_id: int | None) -> str:
    return cache.key("recommend", "products", int(user_id or 0))


def _on_sale() -> list[Any]:
    return [Product.status == "on_sale", Product.deleted_at.is_(None)]


async def _mall_signals(session: AsyncSession,
                        user_id: int) -> tuple[dict[str, float], set[int]]:
    """({category id: weight}, products bought within BOUGHT_RECENTLY_DAYS)."""
    counts: defaultdict[int, float] = defaultdict(float)
    bought_recently: set[int] = set()
    recent_since = utcnow() - dt.timedelta(days=BOUGHT_RECENTLY_DAYS)
    purchases = list(await session.execute(
        select(OrderItem.product_id, Order.paid_at)
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.user_id == user_id, Order.paid_at.is_not(None))
        .order_by(Order.created_at.desc()).limit(RECENT_PURCHASES)))
    favorites = list((await session.execute(
        select(ProductFavorite.product_id).where(ProductFavorite.user_id == user_id)
        .order_by(ProductFavorite.created_at.desc()).limit(RECENT_FAVORITES))).scalars())
    footprints = list((await session.execute(
        select(ProductView.product_id).where(ProductView.user_id == user_id)
        .order_by(ProductView.viewed_at.desc()).limit(RECENT_FOOTPRINTS))).scalars())
    weight_of: dict[int, float] = {}
    for product_id, paid_at in purchases:
        weight_of[int(product_id)] = weight_of.get(int(product_id), 0.0) + PURCHASE_WEIGHT
        if paid_at is not None and paid_at >= recent_since:
            bought_recently.add(int(product_id))
    for ids, weight in ((favorites, FAVORITE_WEIGHT), (footprints, FOOTPRINT_WEIGHT)):
        for product_id in ids:
            weight_of[int(product_id)] = weight_of.get(int(product_id), 0.0) + weight
    if weight_of:
        for product_id, category_id in await session.execute(
                select(Product.id, Product.category_id).where(Product.id.in_(list(weight_of)))):
            if category_id is not None:
                counts[int(category_id)] += weight_of[int(product_id)]
    return signals.normalised(counts), bought_recently


def product_score(product: Product, pets: dict[str, float], categories: dict[str, float],
                  best_sales: int) -> float:
    pet = max((pets.get(p, 0.0) for p in (product.pet_types or []) if isinstance(p, str)),
              default=0.0)
    category = categories.get(str(product.category_id), 0.0)
    popular = math.log1p(product.sales_count or 0) / math.log1p(best_sales) \
        if best_sales > 0 else 0.0
    count = int(product.rating_count or 0)
    rating = (int(product.rating_sum or 0) / count / 5) if count else 0.0
    return (WEIGHTS["pet_type"] * pet + WEIGHTS["category"] * category
            + WEIGHTS["popular"] * popular + WEIGHTS["rating"] * rating)


async def rank_products(session: AsyncSession, user_id: int | None) -> list[int]:
    """Ids of products on sale, best first for this user (best sellers for a visitor)."""
    pets: dict[str, float] = {}
    categories: dict[str, float] = {}
    bought: set[int] = set()
    if user_id is not None:
        pets = await signals.pet_weights(session, user_id)
        categories, bought = await _mall_signals(session, user_id)
    found: dict[int, Product] = {p.id: p for p in (await session.execute(
        select(Product).where(*_on_sale())
        .order_by(Product.sales_count.desc(), Product.id.desc())
        .limit(BEST_SELLERS))).scalars()}
    for category_id in list(categories)[:TOP_CATEGORIES]:
        for product in (await session.execute(
                select(Product).where(*_on_sale(), Product.category_id == int(category_id))
                .order_by(Product.id.desc()).limit(PER_CATEGORY))).scalars():
            found.setdefault(product.id, product)
    best_sales = max((p.sales_count or 0 for p in found.values()), default=0)
    ranked = sorted((p for p in found.values() if p.id not in bought),
                    key=lambda p: (-product_score(p, pets, categories, best_sales), -p.id))
    return [p.id for p in ranked[:RANKED_KEPT]]


async def _ranking(resources: Resources, user_id: int | None) -> list[int]:
    cache = resources.cache
    key = ranking_key(cache, user_id)
    raw = await cache.redis.get(key)
    if raw is not None:
        return [int(i) for i in codec.loads(raw)]
    async with resources.db.session() as session:
        ids = await rank_products(session, user_id)
    ttl_ms = int(resources.settings.recommend_products_seconds * 1000)
    if ttl_ms > 0:
        await cache.redis.set(key, codec.dumps(ids), px=ttl_ms)
    return ids


def cards_key(cache: Cache, user_id: int | None) -> str:
    """The user's first MAX_RECOMMENDED cards; every page size is a slice of them."""
    return cache.key("recommend", "cards", int(user_id or 0))


async def recommended_products(resources: Resources, user_id: int | None, limit: int,
                               known: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Up to `limit` products on sale for this user, as the product list's cards (what
    GET /v1/products/recommended and the mall home's `for_you` section show).

    The cards are cached per user for as long as the ranking, under the catalogue's list
    generation (pawhome/mall/catalogue_cache.py): a product put off sale, deleted or
    changed bumps it, so what is no longer on sale leaves at once; a warm request is one
    MGET, or none with `known` (the keys the gateway read ahead, the mall home's)."""
    limit = max(1, min(int(limit), MAX_RECOMMENDED))
    cache = resources.cache
    key = cards_key(cache, user_id)
    generation, payload = await catalogue_cache.read(
        cache, catalogue_cache.list_generation_key(cache), key, known)
    if payload is not None:
        return cast(list[dict[str, Any]], codec.loads(payload))[:limit]
    ids = await _ranking(resources, user_id)
    if not ids:
        return []
    async with resources.db.session() as session:
        # Read fresh: a product taken off sale since the ranking was cached is left out.
        live = {p.id: p for p in (await session.execute(
            select(Product).where(Product.id.in_(ids), *_on_sale()))).scalars()}
        chosen = [live[i] for i in ids if i in live][:MAX_RECOMMENDED]
        shown = await cards(session, resources.settings, chosen)
    await catalogue_cache.fill(cache, key, generation, codec.dumps(shown),
                               int(resources.settings.recommend_products_seconds))
    return shown[:limit]


async def forget_ranking(resources: Resources, user_id: int | None) -> None:
    """Drop the user's cached ranking and the cards made from it."""
    cache = resources.cache
    await cache.redis.delete(ranking_key(cache, user_id), cards_key(cache, user_id))


async def recommended_page(resources: Resources, user_id: int | None,
                           query: RecommendedProductsQuery) -> dict[str, Any]:
    """GET /v1/products/recommended: {"items": cards}."""
    return {"items": await recommended_products(resources, user_id, query.limit)}
