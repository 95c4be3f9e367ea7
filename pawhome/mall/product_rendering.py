"""How products look in replies: the public detail (the same for every viewer, so it can be
cached), the card lists show, and the merchant's full view with status and SKU codes.

Media are shown through the variants the media worker made (never the original upload):
each image as a large and a thumbnail URL, a video as its stripped copy and poster.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Category, Merchant, Product, Sku
from models.media import Media
from pawhome.integrations.storage import storage_for
from pawhome.media.uploads import jpeg_variant, variants_view
from settings import Settings

LARGE_WIDTH = 1080
THUMB_WIDTH = 240
CARD_WIDTH = 480


def _variant_url(settings: Settings, media: Media, width: int) -> str:
    """The WebP variant at least `width` wide (else the widest), else a JPEG one."""
    views = variants_view(settings, media)
    webps = sorted((v for v in views.values() if v["content_type"] == "image/webp"),
                   key=lambda v: v["width"] or 0)
    for view in webps:
        if (view["width"] or 0) >= width:
            return str(view["url"])
    if webps:
        return str(webps[-1]["url"])
    found = jpeg_variant(media, width)
    return storage_for(settings).public_url(found[1]) if found else ""


def image_view(settings: Settings, media: Media | None) -> dict[str, Any] | None:
    if media is None or media.status != "ready":
        return None
    return {"media_id": media.id, "url": _variant_url(settings, media, LARGE_WIDTH),
            "thumb_url": _variant_url(settings, media, THUMB_WIDTH),
            "width": media.width, "height": media.height}


def video_view(settings: Settings, media: Media | None) -> dict[str, Any] | None:
    if media is None or media.status != "ready":
        return None
    views = variants_view(settings, media)
    url = next((str(v["url"]) for v in views.values()
                if str(v["content_type"]).startswith("video/")), "")
    poster = jpeg_variant(media, LARGE_WIDTH)
    return {"media_id": media.id, "url": url, "duration_ms": media.duration_ms,
            "poster_url": storage_for(settings).public_url(poster[1]) if poster else ""}


async def media_by_id(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, Media]:
    wanted = {int(i) for i in ids if i}
    if not wanted:
        return {}
    return {m.id: m for m in (await session.execute(
        select(Media).where(Media.id.in_(wanted)))).scalars()}


async def live_skus(session: AsyncSession, product_id: int) -> list[Sku]:
    """The SKUs on sale, read afresh (stock moves by UPDATEs the session did not see)."""
    return list((await session.execute(
        select(Sku).where(Sku.product_id == product_id, Sku.deleted_at.is_(None))
        .order_by(Sku.id).execution_options(populate_existing=True))).scalars())


def rating_view(product: Product) -> dict[str, Any]:
    count = int(product.rating_count or 0)
    average = round(int(product.rating_sum or 0) / count, 1) if count else None
    return {"count": count, "average": average}


def _cover_id(product: Product) -> int | None:
    ids = list(product.media_ids or [])
    return int(ids[0]) if ids else None


def card(settings: Settings, product: Product, media: dict[int, Media]) -> dict[str, Any]:
    """A product as lists show it (public lists, favorites, footprints, search)."""
    cover_id = _cover_id(product)
    cover = media.get(cover_id) if cover_id else None
    return {"id": product.id, "name": product.name, "subtitle": product.subtitle,
            "cover_url": _variant_url(settings, cover, CARD_WIDTH)
            if cover is not None and cover.status == "ready" else "",
            "price_min": product.price_min, "price_max": product.price_max,
            "kind": product.kind,
            "sales_count": product.sales_count, "merchant_id": product.merchant_id,
            "category_id": product.category_id, "brand": product.brand,
            "pet_types": list(product.pet_types or []), "tags": list(product.tags or []),
            "rating": rating_view(product)}


async def cards(session: AsyncSession, settings: Settings,
                products: list[Product]) -> list[dict[str, Any]]:
    found = await media_by_id(session, [_cover_id(p) for p in products])
    return [card(settings, p, found) for p in products]


def _sku_public(settings: Settings, sku: Sku, media: dict[int, Media]) -> dict[str, Any]:
    image = image_view(settings, media.get(sku.image_media_id)) if sku.image_media_id else None
    return {"id": sku.id, "spec_values": list(sku.spec_values or []), "spec_text": sku.spec_text,
            "price": sku.price, "original_price": sku.original_price, "stock": sku.stock,
            "points_price": sku.points_price,
            "purchase_limit": sku.purchase_limit,
            "image_url": image["url"] if image else ""}


def _images(settings: Settings, product: Product,
            media: dict[int, Media]) -> list[dict[str, Any]]:
    views = [image_view(settings, media.get(int(m))) for m in (product.media_ids or [])]
    return [v for v in views if v is not None]


async def _category_summary(session: AsyncSession,
                            category_id: int | None) -> dict[str, Any] | None:
    if category_id is None:
        return None
    found = await session.get(Category, category_id)
    return {"id": found.id, "name": found.name} if found is not None else None


async def merchant_summary(session: AsyncSession, merchant_id: int) -> dict[str, Any]:
    found = await session.get(Merchant, merchant_id)
    if found is None:
        return {"id": merchant_id, "name": "", "logo_url": ""}
    return {"id": found.user_id, "name": found.name, "logo_url": found.logo_url}


async def public_detail(session: AsyncSession, settings: Settings,
                        product: Product) -> dict[str, Any]:
    """The product page without anything about the viewer (cached and shared)."""
    skus = await live_skus(session, product.id)
    media = await media_by_id(session, [*(product.media_ids or []), product.video_media_id,
                                        *(s.image_media_id for s in skus)])
    return {
        "id": product.id, "name": product.name, "subtitle": product.subtitle,
        "kind": product.kind,
        "description": product.description, "images": _images(settings, product, media),
        "video": video_view(settings, media.get(product.video_media_id))
        if product.video_media_id else None,
        "category": await _category_summary(session, product.category_id),
        "brand": product.brand, "tags": list(product.tags or []),
        "pet_types": list(product.pet_types or []),
        "spec_attrs": list(product.spec_attrs or []),
        "skus": [_sku_public(settings, s, media) for s in skus],
        "price_min": product.price_min, "price_max": product.price_max,
        "sales_count": product.sales_count, "favorite_count": product.favorite_count,
        "rating": rating_view(product),
        "merchant": await merchant_summary(session, product.merchant_id),
        "on_sale_at": product.on_sale_at,
    }


def _sku_merchant(settings: Settings, sku: Sku, media: dict[int, Media]) -> dict[str, Any]:
    return {**_sku_public(settings, sku, media), "code": sku.code, "weight_g": sku.weight_g,
            "image_media_id": sku.image_media_id, "sales_count": sku.sales_count}


def summary(product: Product) -> dict[str, Any]:
    """What the audit log keeps of a product (before/after a write)."""
    return {"name": product.name, "subtitle": product.subtitle, "status": product.status,
            "category_id": product.category_id, "brand": product.brand,
            "media_ids": list(product.media_ids or []),
            "video_media_id": product.video_media_id, "tags": list(product.tags or []),
            "pet_types": list(product.pet_types or []),
            "price_min": product.price_min, "price_max": product.price_max,
            "description": product.description}


async def merchant_view(session: AsyncSession, settings: Settings,
                        product: Product) -> dict[str, Any]:
    """Everything about a product, for its merchant (and admins), in any status."""
    skus = await live_skus(session, product.id)
    media = await media_by_id(session, [*(product.media_ids or []), product.video_media_id,
                                        *(s.image_media_id for s in skus)])
    return {
        "id": product.id, "merchant_id": product.merchant_id, "status": product.status,
        "status_reason": product.status_reason, "name": product.name,
        "subtitle": product.subtitle, "description": product.description,
        "media_ids": list(product.media_ids or []), "images": _images(settings, product, media),
        "video_media_id": product.video_media_id,
        "video": video_view(settings, media.get(product.video_media_id))
        if product.video_media_id else None,
        "category_id": product.category_id, "brand": product.brand,
        "tags": list(product.tags or []), "pet_types": list(product.pet_types or []),
        "spec_attrs": list(product.spec_attrs or []),
        "skus": [_sku_merchant(settings, s, media) for s in skus],
        "price_min": product.price_min, "price_max": product.price_max,
        "kind": product.kind,
        # -1: some SKU has unlimited stock
        "stock_total": -1 if any(s.stock < 0 for s in skus) else sum(s.stock for s in skus),
        "sales_count": product.sales_count,
        "favorite_count": product.favorite_count, "rating": rating_view(product),
        "on_sale_at": product.on_sale_at, "created_at": product.created_at,
        "updated_at": product.updated_at,
    }


def merchant_row(product: Product, stock_total: int, points_price: int = 0) -> dict[str, Any]:
    """A line of the merchant's product list (`points_price`: its SKUs' highest, 0: none)."""
    return {"id": product.id, "merchant_id": product.merchant_id, "name": product.name,
            "kind": product.kind, "points_price": points_price,
            "status": product.status, "status_reason": product.status_reason,
            "category_id": product.category_id, "price_min": product.price_min,
            "price_max": product.price_max, "stock_total": stock_total,
            "sales_count": product.sales_count, "media_ids": list(product.media_ids or []),
            "updated_at": product.updated_at}
