"""Moderation of appointment reviews, by the product reviews' rule and code
(pawhome/moderation/buyer_reviews.py): the text through our word filter and WeChat's
msgSecCheck, each photo through WeChat's image check; visible only when all passed. And the
admins' decisions (publish a held one, take any one down).

Verdicts move a review through `pawhome.booking.reviews.set_status`, which keeps the
provider's and the staff member's ratings exact. docs/booking.md ("Reviews").
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.booking_reviews import AppointmentReview
from models.media import Media
from pawhome.booking import reviews as booking_reviews
from pawhome.moderation import buyer_reviews, reviews
from pawhome.platform.errors import AppointmentReviewStateConflict
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources

APPOINTMENT_REVIEWS = buyer_reviews.ReviewKind(
    target=booking_reviews.TARGET, task="moderation.review_appointment_review",
    model=AppointmentReview, set_status=booking_reviews.set_status,
    subject_field="provider_id", forget=booking_reviews.forget_provider,
    forget_task="moderation.forget_provider", removed_kind="booking.review_removed",
    not_allowed=AppointmentReviewStateConflict)


@booking_reviews.review_submitted.connect
async def review_later(session: AsyncSession, review_id: int) -> None:
    enqueue_task(session, APPOINTMENT_REVIEWS.task, int(review_id))


async def review_appointment_review(resources: Resources, review_id: int) -> str:
    """The moderation task of a pending appointment review; returns its status afterwards."""
    return await buyer_reviews.moderate(resources, APPOINTMENT_REVIEWS, review_id)


@reviews.follow_media_verdicts
async def _after_image_verdict(session: AsyncSession, media: Media, suggest: str,
                               label: str) -> None:
    await buyer_reviews.follow_image_verdict(session, APPOINTMENT_REVIEWS, media, suggest,
                                             label)


async def approve_review(resources: Resources, admin_id: int, review_id: int) -> dict[str, Any]:
    """An admin publishes a held (or pending, or removed) review: it counts in the ratings."""
    return await buyer_reviews.decide_review(resources, APPOINTMENT_REVIEWS, admin_id,
                                             review_id, True, "")


async def reject_review(resources: Resources, admin_id: int, review_id: int,
                        reason: str) -> dict[str, Any]:
    """An admin takes a review down with a reason its author sees; it leaves the ratings."""
    return await buyer_reviews.decide_review(resources, APPOINTMENT_REVIEWS, admin_id,
                                             review_id, False, reason)


async def forget_provider(resources: Resources, provider_id: int) -> None:
    """The worker's cache drop after an image verdict took a review down."""
    await booking_reviews.forget_provider(resources, provider_id)
