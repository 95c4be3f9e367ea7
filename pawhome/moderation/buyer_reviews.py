"""Moderation of buyers' product reviews, by the post rule: the text through our word filter
and WeChat's msgSecCheck, each photo through WeChat's image check; visible only when the text
and every photo passed, held for an admin on a `review` verdict, removed on a risky one.
And the admins' decisions on reviews (approve a held one, take any one down).

Verdicts move a review through `pawhome.mall.reviews.set_status`, which keeps the product's
rating exact (a review counts while visible). docs/mall.md ("Reviews"). Appointment reviews
are moderated by the same code (a `ReviewKind`, pawhome/moderation/appointment_reviews.py).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from pawhome.platform.errors import AppError, NotFound, ReviewNotAllowed
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources


@dataclass(frozen=True)
class ReviewKind:
    """What moderation needs of one kind of buyer review: its table (with the columns of
    models.reviews.ReviewColumns), how its status moves (keeping its rating exact), what a
    rating change drops from the cache, and how its author hears of a removal."""
    target: str  # moderation_checks.target_type
    task: str  # the moderation task that decides one review
    model: Any
    set_status: Callable[[AsyncSession, Any, str, str], Awaitable[None]]
    subject_field: str  # the review's column naming what it rates (product_id, provider_id)
    forget: Callable[[Resources, int], Awaitable[None]]  # after a commit, given the subject
    forget_task: str  # the same, queued from inside a transaction
    removed_kind: str  # the author's notification when a review is taken down
    not_allowed: type[AppError]  # an admin's decision the review's state refuses


PRODUCT_REVIEWS = ReviewKind(
    target="product_review", task="moderation.review_product_review", model=ProductReview,
    set_status=mall_reviews.set_status, subject_field="product_id",
    forget=mall_reviews.forget_product, forget_task="moderation.forget_product",
    removed_kind="mall.review_removed", not_allowed=ReviewNotAllowed)
TARGET = PRODUCT_REVIEWS.target  # moderation_checks.target_type


@mall_reviews.review_submitted.connect
async def review_later(session: AsyncSession, review_id: int) -> None:
    enqueue_task(session, PRODUCT_REVIEWS.task, int(review_id))


async def _notify_removed(session: AsyncSession, kind: ReviewKind, review: Any,
                          reason: str) -> None:
    await notifications.notify(
        session, review.user_id, "system", kind.removed_kind,
        target_type=kind.target, target_id=review.id,
        payload={"title": "Your review was removed",
                 kind.subject_field: getattr(review, kind.subject_field),
                 "text": f"Your review was removed: {reason}", "reason": reason})


async def _locked(session: AsyncSession, kind: ReviewKind, review_id: int) -> Any:
    try:
        return await mall_reviews.lock_review(session, review_id, kind.model)
    except NotFound:
        return None


async def moderate(resources: Resources, kind: ReviewKind, review_id: int) -> str:
    """The moderation task of a pending review. Idempotent: a review no longer pending is
    left alone and a verdict on the same text is reused. Returns its status afterwards."""
    async with resources.db.session() as session:
        review = await session.get(kind.model, review_id)
        if review is None:
            return "missing"
        if review.status != "pending":
            return str(review.status)
        text, author_id = review.text, review.user_id
        media_ids = [int(m) for m in (review.media_ids or [])]
    verdict = await reviews.check_text(resources, kind.target, review_id, text, author_id,
                                       reviews.SCENE_COMMENT) if text.strip() \
        else reviews.TextVerdict("pass", "", "wordfilter")
    if verdict.suggest == "pass":
        for media_id in media_ids:  # start the image checks not yet started
            await reviews.review_media(resources, media_id)
    async with resources.db.session() as session, session.begin():
        review = await _locked(session, kind, review_id)
        if review is None:
            return "missing"
        if review.status != "pending":
            return str(review.status)  # decided meanwhile
        found = {m.id: m.moderation for m in (await session.execute(
            select(Media).where(Media.id.in_(media_ids)))).scalars()} if media_ids else {}
        outcome = reviews.decide(verdict, [found.get(m, "missing") for m in media_ids])
        if outcome is None:
            return "pending"  # an image verdict is due; it reviews the review again
        status, reason = outcome
        await kind.set_status(session, review, status, reason)
        if status == "removed":
            await _notify_removed(session, kind, review, reason)
        subject = getattr(review, kind.subject_field)
    if status == "visible":
        await kind.forget(resources, subject)
    return status


async def review_product_review(resources: Resources, review_id: int) -> str:
    """The moderation task of a pending product review; returns its status afterwards."""
    return await moderate(resources, PRODUCT_REVIEWS, review_id)


async def _reviews_showing(session: AsyncSession, kind: ReviewKind, media: Media) -> list[Any]:
    # Only the owner attaches an image, so the owner's reviews are the candidates; JSON
    # membership is checked here to work on MariaDB and SQLite alike.
    rows = (await session.execute(select(kind.model).where(
        kind.model.user_id == media.owner_id, kind.model.has_images.is_(True),
        kind.model.status.in_(("pending", "visible"))))).scalars()
    return [r for r in rows if media.id in [int(m) for m in (r.media_ids or [])]]


async def follow_image_verdict(session: AsyncSession, kind: ReviewKind, media: Media,
                               suggest: str, label: str) -> None:
    """A risky photo takes down every review showing it; another verdict lets the pending
    reviews that wait for it be decided."""
    for review in await _reviews_showing(session, kind, media):
        if suggest == "risky":
            reason = reviews.reason_text("risky", label)
            await kind.set_status(session, review, "removed", reason)
            await _notify_removed(session, kind, review, reason)
            # The worker that applied the verdict drops the cached page after its commit.
            enqueue_task(session, kind.forget_task, getattr(review, kind.subject_field))
        elif review.status == "pending":
            enqueue_task(session, kind.task, review.id)


@reviews.follow_media_verdicts
async def _after_image_verdict(session: AsyncSession, media: Media, suggest: str,
                               label: str) -> None:
    await follow_image_verdict(session, PRODUCT_REVIEWS, media, suggest, label)


# -- the admins' decisions ---------------------------------------------------------------------


async def decide_review(resources: Resources, kind: ReviewKind, admin_id: int, review_id: int,
                        approve: bool, reason: str) -> dict[str, Any]:
    """An admin publishes (`approve`) or takes down a review, recorded and audited."""
    async with resources.db.session() as session, session.begin():
        review = await mall_reviews.lock_review(session, review_id, kind.model)
        allowed = ("pending", "hidden", "removed") if approve else ("pending", "hidden",
                                                                    "visible")
        if review.status not in allowed:
            raise kind.not_allowed(f"The review is {review.status} already")
        before = {"status": review.status, "rating": review.rating}
        if approve:
            media_ids = [int(m) for m in (review.media_ids or [])]
            if media_ids:  # the photos an admin has now seen pass
                await session.execute(update(Media).where(
                    Media.id.in_(media_ids), Media.moderation != "pass")
                    .values(moderation="pass").execution_options(synchronize_session=False))
            await kind.set_status(session, review, "visible", "")
        else:
            await kind.set_status(session, review, "removed", reason)
        session.add(ModerationCheck(
            target_type=kind.target, target_id=review_id, provider="admin", state="done",
            suggest="pass" if approve else "risky", label="" if approve else "rejected",
            detail={"admin_id": admin_id, "reason": reason}, decided_at=utcnow()))
        audit.record(session, actor_id=admin_id, actor_role="admin",
                     action="review.approve" if approve else "review.reject",
                     target_type=kind.target, target_id=review_id, before=before,
                     after={"status": review.status, "reason": reason})
        if not approve:
            await _notify_removed(session, kind, review, reason)
        result = {"id": review.id, "status": review.status,
                  "status_reason": review.status_reason}
        subject = getattr(review, kind.subject_field)
    await kind.forget(resources, subject)
    return result


async def approve_review(resources: Resources, admin_id: int, review_id: int) -> dict[str, Any]:
    """An admin publishes a held (or pending, or removed) review: it counts in the rating."""
    return await decide_review(resources, PRODUCT_REVIEWS, admin_id, review_id, True, "")


async def reject_review(resources: Resources, admin_id: int, review_id: int,
                        reason: str) -> dict[str, Any]:
    """An admin takes a review down with a reason its author sees; it leaves the rating."""
    return await decide_review(resources, PRODUCT_REVIEWS, admin_id, review_id, False, reason)
