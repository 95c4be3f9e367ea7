"""Product favorites and browse footprints: the one module that writes `product_favorites`,
`product_views` and `products.favorite_count`.

A favorite is an INSERT IGNORE that moves favorite_count only when a row went in, so twenty
taps at once count once. A footprint is noted in Redis when a logged-in user opens a product
(one pipelined call beside the cached page, nothing on the database) and written to
`product_views` by the beat job `default.flush_product_footprints`, or at once when the user
reads their footprints; each user keeps the newest PRODUCT_FOOTPRINTS_KEPT.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import Insert, and_, delete, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Product, ProductFavorite, ProductView
from pawhome.mall.product_rendering import cards
from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import NotFound, ValidationFailed, field_error
from pawhome.platform.pagination import CursorQuery, cursor_result, decode_cursor
from pawhome.platform.resources import Resources
from settings import Settings

log = logging.getLogger("pawhome.mall.product_favorites")

# A user's unflushed footprints expire if no flush ever comes (no beat running).
FOOTPRINT_BUFFER_SECONDS = 86400
FLUSH_BATCH = 500


# -- favorites ---------------------------------------------------------------------------------


def _dialect_insert(session: AsyncSession, model: Any) -> Insert:
    return (sqlite.insert(model) if session.get_bind().dialect.name == "sqlite"
            else mysql.insert(model))


async def _insert_once(session: AsyncSession, **values: Any) -> bool:
    statement = _dialect_insert(session, ProductFavorite).values(**values)
    if session.get_bind().dialect.name == "sqlite":
        statement = statement.on_conflict_do_nothing()  # type: ignore[attr-defined]
    else:
        statement = statement.prefix_with("IGNORE")
    return bool((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def set_favorite(resources: Resources, user_id: int, product_id: int,
                       favorited: bool) -> dict[str, Any]:
    """Collect (a product on sale) or drop (any product) a product; idempotent. Returns
    {"favorited", "favorite_count", "changed"}. The count on the cached product page may lag
    by up to its TTL; this reply's is exact."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        product = await session.get(Product, product_id)
        if product is None or product.deleted_at is not None or \
                (favorited and product.status != "on_sale"):
            raise NotFound("Product not found")
        if favorited:
            changed = await _insert_once(session, user_id=user_id, product_id=product_id,
                                         created_at=utcnow())
        else:
            changed = bool((await session.execute(delete(ProductFavorite).where(
                ProductFavorite.user_id == user_id,
                ProductFavorite.product_id == product_id))).rowcount)  # type: ignore[attr-defined]
        if changed:
            await session.execute(update(Product).where(Product.id == product_id).values(
                favorite_count=Product.favorite_count + (1 if favorited else -1))
                .execution_options(synchronize_session=False))
        # A locking read: the latest committed count, not this transaction's snapshot
        # (taken before a concurrent favorite of the same product committed).
        count = int((await session.execute(select(Product.favorite_count).where(
            Product.id == product_id).with_for_update(read=True))).scalar_one())
        return {"favorited": favorited, "favorite_count": count, "changed": changed}

    return await run_transaction(resources.db, work)


async def is_favorite(resources: Resources, user_id: int, product_id: int) -> bool:
    async with resources.db.connection() as connection:
        return (await connection.execute(select(ProductFavorite.product_id).where(
            ProductFavorite.user_id == user_id,
            ProductFavorite.product_id == product_id))).first() is not None


def _position(cursor: str | None) -> tuple[dt.datetime, int] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(position["c"])), int(position["i"])
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from None


async def _with_cards(session: AsyncSession, settings: Settings, pairs: list[tuple[int, Any]],
                      when: str) -> list[dict[str, Any]]:
    """Cards of the products named, in order, each with `when` and whether it can be bought
    now (`available`); deleted products are left out."""
    ids = [product_id for product_id, _ in pairs]
    found = {p.id: p for p in (await session.execute(
        select(Product).where(Product.id.in_(ids), Product.deleted_at.is_(None)))).scalars()} \
        if ids else {}
    shown = [found[i] for i in ids if i in found]
    by_id = {c["id"]: c for c in await cards(session, settings, shown)}
    return [{**by_id[product_id], when: at, "status": found[product_id].status,
             "available": found[product_id].status == "on_sale"}
            for product_id, at in pairs if product_id in by_id]


async def list_favorites(resources: Resources, user_id: int,
                         query: CursorQuery) -> dict[str, Any]:
    """The user's favorite products, most recently collected first, as cards (one no longer
    on sale is flagged `available: false`; a deleted one is left out, so a page may be
    short: follow nextCursor)."""
    position = _position(query.cursor)
    conditions = [ProductFavorite.user_id == user_id]
    if position is not None:
        at, after_id = position
        conditions.append(or_(ProductFavorite.created_at < at,
                              and_(ProductFavorite.created_at == at,
                                   ProductFavorite.product_id < after_id)))
    async with resources.db.session() as session:
        rows = list((await session.execute(
            select(ProductFavorite.product_id, ProductFavorite.created_at).where(*conditions)
            .order_by(ProductFavorite.created_at.desc(), ProductFavorite.product_id.desc())
            .limit(query.limit + 1))).all())
        more, rows = len(rows) > query.limit, rows[:query.limit]
        items = await _with_cards(session, resources.settings,
                                  [(int(r[0]), r[1]) for r in rows], "favorited_at")
    last = {"c": rows[-1][1].isoformat(), "i": int(rows[-1][0])} if more and rows else None
    return cursor_result(items, last)


# -- footprints --------------------------------------------------------------------------------


def footprints_key(cache: Cache, user_id: int) -> str:
    """Hash: product id -> epoch milliseconds of the user's last view, not yet written."""
    return cache.key("mall", "footprints", int(user_id))


def footprints_dirty_key(cache: Cache) -> str:
    """Set of user ids with footprints waiting in Redis."""
    return cache.key("mall", "footprints", "dirty")


async def note_view(cache: Cache, user_id: int, product_id: int) -> None:
    """A logged-in user opened a product page: one pipelined Redis call. A Redis outage
    loses the footprint, never the page."""
    now_ms = int(utcnow().replace(tzinfo=dt.UTC).timestamp() * 1000)
    key = footprints_key(cache, user_id)
    try:
        async with cache.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, str(product_id), now_ms)
            pipe.expire(key, FOOTPRINT_BUFFER_SECONDS)
            pipe.sadd(footprints_dirty_key(cache), str(user_id))
            await pipe.execute()
    except UNAVAILABLE_ERRORS as error:
        log.warning("footprint of user %s not noted: %r", user_id, error)


async def _take_buffer(cache: Cache, user_id: int) -> dict[int, dt.datetime]:
    """The user's buffered footprints, removed from Redis in the same transaction."""
    async with cache.redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(footprints_key(cache, user_id))
        pipe.delete(footprints_key(cache, user_id))
        pipe.srem(footprints_dirty_key(cache), str(user_id))
        raw, _, _ = await pipe.execute()
    out = {}
    for product_id, ms in (raw or {}).items():
        at = dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).replace(tzinfo=None)
        out[int(product_id)] = at
    return out


async def _write_footprints(session: AsyncSession, user_id: int,
                            views: dict[int, dt.datetime], kept: int) -> None:
    """Upsert the views (a later one wins) and keep the user's newest `kept`. Caller
    commits."""
    existing = set((await session.execute(select(Product.id).where(
        Product.id.in_(list(views))))).scalars())
    for product_id, at in sorted(views.items()):
        if product_id not in existing:
            continue  # a product deleted for good since
        values = {"user_id": user_id, "product_id": product_id, "viewed_at": at}
        statement: Insert
        if session.get_bind().dialect.name == "sqlite":
            statement = sqlite.insert(ProductView).values(**values).on_conflict_do_update(
                index_elements=["user_id", "product_id"], set_={"viewed_at": at})
        else:
            statement = mysql.insert(ProductView).values(**values).on_duplicate_key_update(
                viewed_at=at)
        await session.execute(statement)
    cutoff = (await session.execute(
        select(ProductView.viewed_at).where(ProductView.user_id == user_id)
        .order_by(ProductView.viewed_at.desc()).offset(kept - 1).limit(1))).scalar_one_or_none()
    if cutoff is not None:
        await session.execute(delete(ProductView).where(ProductView.user_id == user_id,
                                                        ProductView.viewed_at < cutoff))


async def flush_footprints(resources: Resources, user_id: int) -> int:
    """Write one user's buffered footprints to the table; returns how many."""
    views = await _take_buffer(resources.cache, user_id)
    if not views:
        return 0
    async with resources.db.session() as session, session.begin():
        await _write_footprints(session, user_id, views,
                                max(1, resources.settings.product_footprints_kept))
    return len(views)


async def flush_all_footprints(resources: Resources) -> int:
    """The beat job: write the buffered footprints of up to FLUSH_BATCH users."""
    users = await resources.cache.redis.srandmember(footprints_dirty_key(resources.cache),
                                                    FLUSH_BATCH)
    written = 0
    for raw in users or []:
        written += await flush_footprints(resources, int(raw))
    return written


async def list_footprints(resources: Resources, user_id: int,
                          query: CursorQuery) -> dict[str, Any]:
    """The products the user opened, last viewed first, as cards (`viewed_at`,
    `available`)."""
    position = _position(query.cursor)
    await flush_footprints(resources, user_id)
    conditions = [ProductView.user_id == user_id]
    if position is not None:
        at, after_id = position
        conditions.append(or_(ProductView.viewed_at < at,
                              and_(ProductView.viewed_at == at,
                                   ProductView.product_id < after_id)))
    async with resources.db.session() as session:
        rows = list((await session.execute(
            select(ProductView.product_id, ProductView.viewed_at).where(*conditions)
            .order_by(ProductView.viewed_at.desc(), ProductView.product_id.desc())
            .limit(query.limit + 1))).all())
        more, rows = len(rows) > query.limit, rows[:query.limit]
        items = await _with_cards(session, resources.settings,
                                  [(int(r[0]), r[1]) for r in rows], "viewed_at")
    last = {"c": rows[-1][1].isoformat(), "i": int(rows[-1][0])} if more and rows else None
    return cursor_result(items, last)


async def clear_footprints(resources: Resources, user_id: int) -> dict[str, Any]:
    """Forget every footprint of the user (buffered ones too)."""
    await _take_buffer(resources.cache, user_id)
    async with resources.db.session() as session, session.begin():
        await session.execute(delete(ProductView).where(ProductView.user_id == user_id))
    return {"items": [], "nextCursor": None}
