"""Moderation of mall products: the review a product gets when it is put on sale (or its text
or images change while on sale), with the same screens as posts — our word filter and
WeChat's msgSecCheck on its text, WeChat's image checks on its images — and the admins'
decisions on products held for review.

Verdicts: pass (text and every image) → on sale; risky anywhere → rejected with the reason
the merchant sees (and a system notification); anything an admin must look at → stays in
review with the reason, until an admin approves or rejects it. docs/mall.md ("Catalogue").
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import ModerationCheck
from models.mall import Product, Sku
from models.media import Media
from pawhome.mall import products
from pawhome.mall.product_rendering import merchant_view, summary
from pawhome.messaging import notifications
from pawhome.moderation import reviews
from pawhome.platform import audit
from pawhome.platform.errors import Conflict, NotFound
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources


@products.product_submitted.connect
async def review_product_later(session: AsyncSession, product_id: int) -> None:
    enqueue_task(session, "moderation.review_product", int(product_id))


async def _notify_rejected(session: AsyncSession, product: Product, reason: str) -> None:
    await notifications.notify(
        session, product.merchant_id, "system", "mall.product_rejected",
        target_type="product", target_id=product.id,
        payload={"title": "Your product was not approved",
                 "text": f"「{product.name}」 was not approved: {reason}", "reason": reason})


async def _locked_product(session: AsyncSession, product_id: int) -> Product | None:
    product = (await session.execute(select(Product).where(Product.id == product_id)
                                     .with_for_update())).scalar_one_or_none()
    return None if product is None or product.deleted_at is not None else product


async def review_product(resources: Resources, product_id: int) -> str:
    """The moderation task of a product in review. Idempotent: a product no longer in
    review is left alone, and verdicts on the same text are reused; a product whose content
    changed meanwhile waits for its own (later) review. Returns its status afterwards."""
    async with resources.db.session() as session:
        product = await session.get(Product, product_id)
        if product is None or product.deleted_at is not None:
            return "missing"
        if product.status != "reviewing":
            return product.status
        text, merchant_id = products.review_text(product), product.merchant_id
        media_ids = await products.review_media_ids(session, product)
    verdict = await reviews.check_text(resources, "product", product_id, text, merchant_id,
                                       reviews.SCENE_FORUM)
    if verdict.suggest == "pass":
        for media_id in media_ids:  # start the image checks not yet started
            await reviews.review_media(resources, media_id)
    async with resources.db.session() as session, session.begin():
        product = await _locked_product(session, product_id)
        if product is None:
            return "missing"
        if product.status != "reviewing" or products.review_text(product) != text \
                or await products.review_media_ids(session, product) != media_ids:
            return product.status  # decided meanwhile, or changed (its own review follows)
        found = {m.id: m.moderation for m in (await session.execute(
            select(Media).where(Media.id.in_(media_ids)))).scalars()} if media_ids else {}
        outcome = reviews.decide(verdict, [found.get(m, "missing") for m in media_ids])
        if outcome is None:
            return "reviewing"  # an image verdict is due; it reviews the product again
        state, reason = outcome
        if state == "visible":
            await products.set_status(session, product_id, "on_sale")
        elif state == "removed":
            await products.set_status(session, product_id, "rejected", reason)
            await _notify_rejected(session, product, reason)
        else:
            await products.hold_in_review(session, product, reason)
        status = product.status
    if status != "reviewing":
        await products.forget_products(resources, [product_id], lists=True)
    return status


async def _products_showing(session: AsyncSession, media: Media) -> list[Product]:
    # Only the owner attaches an image, so the owner's live products are the candidates;
    # JSON membership is checked here to work on MariaDB and SQLite alike.
    rows = list((await session.execute(select(Product).where(
        Product.merchant_id == media.owner_id, Product.deleted_at.is_(None),
        Product.status.in_(("reviewing", "on_sale"))))).scalars())
    if not rows:
        return []
    with_sku_image = set((await session.execute(select(Sku.product_id).where(
        Sku.product_id.in_([p.id for p in rows]), Sku.image_media_id == media.id,
        Sku.deleted_at.is_(None)))).scalars())
    return [p for p in rows if p.id in with_sku_image or p.video_media_id == media.id
            or media.id in [int(m) for m in (p.media_ids or [])]]


@reviews.follow_media_verdicts
async def _after_image_verdict(session: AsyncSession, media: Media, suggest: str,
                               label: str) -> None:
    """A risky image rejects every product showing it; another verdict lets the products
    in review that wait for it be decided."""
    for product in await _products_showing(session, media):
        if suggest == "risky":
            reason = reviews.reason_text("risky", label)
            await products.set_status(session, product.id, "rejected", reason)
            await _notify_rejected(session, product, reason)
            # The worker that applied the verdict drops the cached pages after its commit.
            enqueue_task(session, "moderation.forget_product", product.id)
        elif product.status == "reviewing":
            await review_product_later(session, product.id)


async def forget_product(resources: Resources, product_id: int) -> None:
    """After an image verdict took a product off sale: drop its cached pages."""
    await products.forget_products(resources, [product_id], lists=True)


# -- the admins' decisions ---------------------------------------------------------------------


async def _decide(resources: Resources, admin_id: int, product_id: int, approve: bool,
                  reason: str) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        product = await _locked_product(session, product_id)
        if product is None:
            raise NotFound("Product not found")
        allowed = ("reviewing", "rejected") if approve else ("reviewing", "on_sale")
        if product.status not in allowed:
            raise Conflict(f"The product is {product.status}: only a product "
                           f"{' or '.join(allowed)} can be {'approved' if approve else 'rejected'}")
        before = summary(product)
        if approve:
            media_ids = await products.review_media_ids(session, product)
            if media_ids:  # the images an admin has now seen pass
                await session.execute(update(Media).where(
                    Media.id.in_(media_ids), Media.moderation != "pass")
                    .values(moderation="pass").execution_options(synchronize_session=False))
            await products.set_status(session, product_id, "on_sale")
        else:
            await products.set_status(session, product_id, "rejected", reason)
        session.add(ModerationCheck(
            target_type="product", target_id=product_id, provider="admin", state="done",
            suggest="pass" if approve else "risky", label="" if approve else "rejected",
            detail={"admin_id": admin_id, "reason": reason}, decided_at=utcnow()))
        audit.record(session, actor_id=admin_id, actor_role="admin",
                     action="product.approve" if approve else "product.reject",
                     target_type="product", target_id=product_id, before=before,
                     after={**summary(product), "reason": reason})
        view = await merchant_view(session, resources.settings, product)
        if not approve:
            await _notify_rejected(session, product, reason)  # last: it locks the recipient
    await products.forget_products(resources, [product_id], lists=True)
    return view


async def approve_product(resources: Resources, admin_id: int,
                          product_id: int) -> dict[str, Any]:
    """An admin passes a product in review (or one rejected before): it goes on sale."""
    return await _decide(resources, admin_id, product_id, True, "")


async def reject_product(resources: Resources, admin_id: int, product_id: int,
                         reason: str) -> dict[str, Any]:
    """An admin rejects a product in review or on sale, with the reason its merchant sees."""
    return await _decide(resources, admin_id, product_id, False, reason)
