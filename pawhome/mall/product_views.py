"""The public catalogue: product lists (GET /v1/products) and product pages
(GET /v1/products/{id}), both cached in Redis and dropped at once on every change.

Only products on sale are shown to the public, whatever the query says. A list page is
cached for PRODUCT_LIST_CACHE_SECONDS under the list generation, a product page for
PRODUCT_DETAIL_CACHE_SECONDS under the product's own (pawhome/mall/catalogue_cache.py);
the gateway reads the generation and the page with its admission call, so a warm page costs
no further Redis call. The viewer's favorite flag is never cached: it is added to the shared
page per request, and a logged-in viewer's footprint is noted beside it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import String, exists, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.mall import Product, Sku
from pawhome.mall import catalogue_cache, categories, product_favorites
from pawhome.mall.product_forms import MAX_PRICE_FEN, Kind, Species
from pawhome.mall.product_rendering import cards, public_detail
from pawhome.platform import codec
from pawhome.platform.errors import NotFound
from pawhome.platform.fields import Id
from pawhome.platform.pagination import MAX_LIMIT, PageQuery, page_result
from pawhome.platform.resources import Resources

ListSort = Literal["default", "sales", "price_asc", "price_desc", "newest"]
MAX_LIST_PAGE = 1000
NOT_FOUND = b"null"  # a cached "no such product on sale"


class ProductFilters(BaseModel):
    """What the public product list and product search filter by."""
    model_config = {"extra": "forbid", "frozen": True}

    category_id: Id | None = Field(None, description="this category and every one below it")
    pet_type: Species | None = None
    price_min: int | None = Field(None, ge=0, le=MAX_PRICE_FEN,
                                  description="fen; on the product's lowest SKU price")
    price_max: int | None = Field(None, ge=0, le=MAX_PRICE_FEN,
                                  description="fen; on the product's lowest SKU price")
    merchant_id: Id | None = None
    kind: Kind | None = Field(None, description="physical, or a virtual kind (virtual pet "
                                                "items, bought in the points mall)")
    points: bool | None = Field(None, description="true: only products with a SKU sold for "
                                                  "points (the points mall)")
    page: int = Field(1, ge=1, le=MAX_LIST_PAGE)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)

    @property
    def page_query(self) -> PageQuery:
        return PageQuery.model_construct(page=self.page, limit=self.limit)


class ProductListQuery(ProductFilters):
    sort: ListSort = Field("default", description="default: best sellers, then newest")

    def canonical(self) -> str:
        return ":".join(str(v if v is not None else "") for v in (
            self.category_id, self.pet_type, self.price_min, self.price_max,
            self.merchant_id, self.sort, self.page, self.limit, self.kind,
            "" if self.points is None else int(self.points)))


async def public_conditions(session: AsyncSession,
                            filters: ProductFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of a public list or search: on sale, not deleted, filtered."""
    conditions: list[ColumnElement[bool]] = [Product.status == "on_sale",
                                             Product.deleted_at.is_(None)]
    if filters.category_id is not None:
        conditions.append(Product.category_id.in_(
            await categories.descendant_ids(session, filters.category_id)))
    if filters.pet_type:
        # pet_types is a JSON array of fixed words: a quoted-word match is exact.
        conditions.append(type_coerce(Product.pet_types, String).like(f'%"{filters.pet_type}"%'))
    if filters.price_min is not None:
        conditions.append(Product.price_min >= filters.price_min)
    if filters.price_max is not None:
        conditions.append(Product.price_min <= filters.price_max)
    if filters.merchant_id is not None:
        conditions.append(Product.merchant_id == filters.merchant_id)
    if filters.kind is not None:
        conditions.append(Product.kind == filters.kind)
    if filters.points is not None:
        redeemable = exists().where(Sku.product_id == Product.id, Sku.points_price > 0,
                                    Sku.deleted_at.is_(None))
        conditions.append(redeemable if filters.points else ~redeemable)
    return conditions


def order_by(sort: str) -> list[Any]:
    orders: dict[str, list[Any]] = {
        "default": [Product.sales_count.desc(), Product.on_sale_at.desc(), Product.id.desc()],
        "sales": [Product.sales_count.desc(), Product.id.desc()],
        "price_asc": [Product.price_min.asc(), Product.id.desc()],
        "price_desc": [Product.price_min.desc(), Product.id.desc()],
        "newest": [Product.on_sale_at.desc(), Product.id.desc()],
    }
    return orders[sort]


# -- lists -------------------------------------------------------------------------------------


def list_reads(resources: Resources, query: ProductListQuery) -> list[str]:
    """The Redis keys list_page reads (read ahead by the gateway's admission call)."""
    cache = resources.cache
    return [catalogue_cache.list_generation_key(cache),
            catalogue_cache.list_page_key(cache, query.canonical())]


async def list_page(resources: Resources, query: ProductListQuery,
                    known: dict[str, Any] | None = None) -> bytes:
    """GET /v1/products: the encoded page of products on sale as cards."""
    gen_key, page_key = list_reads(resources, query)
    generation, payload = await catalogue_cache.read(resources.cache, gen_key, page_key, known)
    if payload is not None:
        return payload
    async with resources.db.session() as session:
        conditions = await public_conditions(session, query)
        total = int((await session.execute(select(func.count()).select_from(Product)
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(Product).where(*conditions).order_by(*order_by(query.sort))
            .offset((query.page - 1) * query.limit).limit(query.limit))).scalars())
        items = await cards(session, resources.settings, rows)
    payload = codec.dumps(page_result(items, total, query.page_query))
    await catalogue_cache.fill(resources.cache, page_key, generation, payload,
                               resources.settings.product_list_cache_seconds)
    return payload


# -- the product page --------------------------------------------------------------------------


def detail_reads(resources: Resources, product_id: int | str) -> list[str]:
    """The Redis keys product_page reads (read ahead by the gateway's admission call)."""
    cache, product_id = resources.cache, int(product_id)
    return [catalogue_cache.detail_generation_key(cache, product_id),
            catalogue_cache.detail_key(cache, product_id)]


async def shared_page(resources: Resources, product_id: int,
                      known: dict[str, Any] | None = None) -> bytes:
    """The encoded page of a product on sale as everyone sees it, or NOT_FOUND."""
    gen_key, page_key = detail_reads(resources, product_id)
    generation, payload = await catalogue_cache.read(resources.cache, gen_key, page_key, known)
    if payload is not None:
        return payload
    async with resources.db.session() as session:
        product = await session.get(Product, product_id)
        if product is None or product.deleted_at is not None or product.status != "on_sale":
            payload = NOT_FOUND
        else:
            payload = codec.dumps(await public_detail(session, resources.settings, product))
    await catalogue_cache.fill(resources.cache, page_key, generation, payload,
                               resources.settings.product_detail_cache_seconds)
    return payload


async def product_page(resources: Resources, viewer_id: int | None, product_id: int,
                       known: dict[str, Any] | None = None) -> bytes:
    """GET /v1/products/{id}: the encoded product page with the viewer's `favorited` flag
    (false for a visitor). A logged-in viewer's footprint is noted (in Redis)."""
    payload = await shared_page(resources, product_id, known)
    if payload == NOT_FOUND:
        raise NotFound("Product not found")
    favorited = False
    if viewer_id is not None:  # the footprint (Redis) and the flag (a key read) side by side
        _, favorited = await asyncio.gather(
            product_favorites.note_view(resources.cache, viewer_id, product_id),
            product_favorites.is_favorite(resources, viewer_id, product_id))
    # The shared page is a JSON object: the flag goes in before its closing brace.
    return payload[:-1] + (b',"favorited":true}' if favorited else b',"favorited":false}')
