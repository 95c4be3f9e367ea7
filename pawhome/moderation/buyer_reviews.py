"""Moderation of buyers' product reviews, by the post rule: the text through our word filter
and WeChat's msgSecCheck, each photo through WeChat's image check; visible only when the text
and every photo passed, held for an admin on a `review` verdict, removed on a risky one.
And the admins' decisions on reviews (approve a held one, take any one down).

Verdicts move a review through `pawhome.mall.reviews.set_status`, which keeps the product's
rating exact (a review counts while visible). docs/mall.md ("Reviews").
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import ModerationCheck
from models.media import Media
from models.reviews import ProductReview
from pawhome.mall import reviews as mall_reviews
from pawhome.messaging import notifications
from pawhome.moderation import reviews
from pawhome.platform import audit
from pawhome.platform.errors import NotFound, ReviewNotAllowed
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources

TARGET = "product_review"  # moderation_checks.target_type


@mall_reviews.review_submitted.connect
async def review_later(session: AsyncSession, review_id: int) -> None:
    enqueue_task(session, "moderation.review_product_review", int(review_id))


async def _notify_removed(session: AsyncSession, review: ProductReview, reason: str) -> None:
    await notifications.notify(
        session, review.user_id, "system", "mall.review_removed",
        target_type=TARGET, target_id=review.id,
        payload={"title": "Your review was removed", "product_id": review.product_id,
                 "text": f"Your review was removed: {reason}", "reason": reason})


async def _locked(session: AsyncSession, review_id: int) -> ProductReview | None:
    try:
        return await mall_reviews.lock_review(session, review_id)
    except NotFound:
        return None


async def review_product_review(resources: Resources, review_id: int) -> str:
    """The moderation task of a pending review. Idempotent: a review no longer pending is
    left alone and a verdict on the same text is reused. Returns its status afterwards."""
    async with resources.db.session() as session:
        review = await session.get(ProductReview, review_id)
        if review is None:
            return "missing"
        if review.status != "pending":
            return review.status
        text, author_id = review.text, review.user_id
        media_ids = [int(m) for m in (review.media_ids or [])]
    verdict = await reviews.check_text(resources, TARGET, review_id, text, author_id,
                                       reviews.SCENE_COMMENT) if text.strip() \
        else reviews.TextVerdict("pass", "", "wordfilter")
    if verdict.suggest == "pass":
        for media_id in media_ids:  # start the image checks not yet started
            await reviews.review_media(resources, media_id)
    async with resources.db.session() as session, session.begin():
        review = await _locked(session, review_id)
        if review is None:
            return "missing"
        if review.status != "pending":
            return review.status  # decided meanwhile
        found = {m.id: m.moderation for m in (await session.execute(
            select(Media).where(Media.id.in_(media_ids)))).scalars()} if media_ids else {}
        outcome = reviews.decide(verdict, [found.get(m, "missing") for m in media_ids])
        if outcome is None:
            return "pending"  # an image verdict is due; it reviews the review again
        status, reason = outcome
        await mall_reviews.set_status(session, review, status, reason)
        if status == "removed":
            await _notify_removed(session, review, reason)
        product_id = review.product_id
    if status == "visible":
        await mall_reviews.forget_product(resources, product_id)
    return status


async def _reviews_showing(session: AsyncSession, media: Media) -> list[ProductReview]:
    # Only the owner attaches an image, so the owner's reviews are the candidates; JSON
    # membership is checked here to work on MariaDB and SQLite alike.
    rows = (await session.execute(select(ProductReview).where(
        ProductReview.user_id == media.owner_id, ProductReview.has_images.is_(True),
        ProductReview.status.in_(("pending", "visible"))))).scalars()
    return [r for r in rows if media.id in [int(m) for m in (r.media_ids or [])]]


@reviews.follow_media_verdicts
async def _after_image_verdict(session: AsyncSession, media: Media, suggest: str,
                               label: str) -> None:
    """A risky photo takes down every review showing it; another verdict lets the pending
    reviews that wait for it be decided."""
    for review in await _reviews_showing(session, media):
        if suggest == "risky":
            reason = reviews.reason_text("risky", label)
            await mall_reviews.set_status(session, review, "removed", reason)
            await _notify_removed(session, review, reason)
            # The worker that applied the verdict drops the cached page after its commit.
            enqueue_task(session, "moderation.forget_product", review.product_id)
        elif review.status == "pending":
            await review_later(session, review.id)


# -- the admins' decisions ---------------------------------------------------------------------


async def _decide(resources: Resources, admin_id: int, review_id: int, approve: bool,
                  reason: str) -> dict[str, Any]:
    async with resources.db.session() as session, session.begin():
        review = await mall_reviews.lock_review(session, review_id)
        allowed = ("pending", "hidden", "removed") if approve else ("pending", "hidden",
                                                                    "visible")
        if review.status not in allowed:
            raise ReviewNotAllowed(f"The review is {review.status} already")
        before = {"status": review.status, "rating": review.rating}
        if approve:
            media_ids = [int(m) for m in (review.media_ids or [])]
            if media_ids:  # the photos an admin has now seen pass
                await session.execute(update(Media).where(
                    Media.id.in_(media_ids), Media.moderation != "pass")
                    .values(moderation="pass").execution_options(synchronize_session=False))
            await mall_reviews.set_status(session, review, "visible")
        else:
            await mall_reviews.set_status(session, review, "removed", reason)
        session.add(ModerationCheck(
            target_type=TARGET, target_id=review_id, provider="admin", state="done",
            suggest="pass" if approve else "risky", label="" if approve else "rejected",
            detail={"admin_id": admin_id, "reason": reason}, decided_at=utcnow()))
        audit.record(session, actor_id=admin_id, actor_role="admin",
                     action="review.approve" if approve else "review.reject",
                     target_type=TARGET, target_id=review_id, before=before,
                     after={"status": review.status, "reason": reason})
        if not approve:
            await _notify_removed(session, review, reason)
        result = {"id": review.id, "status": review.status,
                  "status_reason": review.status_reason}
        product_id = review.product_id
    await mall_reviews.forget_product(resources, product_id)
    return result


async def approve_review(resources: Resources, admin_id: int, review_id: int) -> dict[str, Any]:
    """An admin publishes a held (or pending, or removed) review: it counts in the rating."""
    return await _decide(resources, admin_id, review_id, True, "")


async def reject_review(resources: Resources, admin_id: int, review_id: int,
                        reason: str) -> dict[str, Any]:
    """An admin takes a review down with a reason its author sees; it leaves the rating."""
    return await _decide(resources, admin_id, review_id, False, reason)
