"""Tasks of the moderation queue: review a post, a comment or an image
(pawhome/moderation/reviews.py), a mall product (pawhome/moderation/product_reviews.py) or a
buyer's product review (pawhome/moderation/buyer_reviews.py) or an appointment review
(pawhome/moderation/appointment_reviews.py).

Each takes an id and is idempotent: content that is no longer pending is left alone and a
verdict on the same text is reused, so redelivery and retries cost no WeChat quota. WeChat
outages and rate limits are transient (retried with backoff).
"""
from __future__ import annotations

from celery import shared_task

from pawhome.moderation import appointment_reviews, buyer_reviews, product_reviews
from pawhome.moderation import reviews as moderation
from workers import runtime
from workers.base import PERIODIC


@shared_task(name="moderation.review_post")
def review_post(post_id: int) -> str:
    """Decide a pending post from its text and images; returns its state afterwards."""
    return runtime.run(moderation.review_post(runtime.resources(), post_id))


@shared_task(name="moderation.review_comment")
def review_comment(comment_id: int) -> str:
    """Check a comment's text; hides or removes it if needed; returns its state."""
    return runtime.run(moderation.review_comment(runtime.resources(), comment_id))


@shared_task(name="moderation.review_media")
def review_media(media_id: int) -> str:
    """Start WeChat's asynchronous check of a ready image; returns its moderation state."""
    return runtime.run(moderation.review_media(runtime.resources(), media_id))


@shared_task(name="moderation.expire_media_checks", **PERIODIC)
def expire_media_checks() -> int:
    """Beat: images whose WeChat verdict is overdue go to the review queue."""
    return runtime.run(moderation.expire_media_checks(runtime.resources()))


@shared_task(name="moderation.review_product")
def review_product(product_id: int) -> str:
    """Decide a mall product in review from its text and images; returns its status."""
    return runtime.run(product_reviews.review_product(runtime.resources(), product_id))


@shared_task(name="moderation.forget_product")
def forget_product(product_id: int) -> None:
    """Drop the cached pages of a product an image verdict took off sale."""
    runtime.run(product_reviews.forget_product(runtime.resources(), product_id))


@shared_task(name="moderation.review_product_review")
def review_product_review(review_id: int) -> str:
    """Decide a buyer's pending product review from its text and photos; returns its status."""
    return runtime.run(buyer_reviews.review_product_review(runtime.resources(), review_id))


@shared_task(name="moderation.review_appointment_review")
def review_appointment_review(review_id: int) -> str:
    """Decide a pending appointment review from its text and photos; returns its status."""
    return runtime.run(appointment_reviews.review_appointment_review(runtime.resources(),
                                                                     review_id))


@shared_task(name="moderation.forget_provider")
def forget_provider(provider_id: int) -> None:
    """Drop the cached catalogue after an image verdict took a provider's review down."""
    runtime.run(appointment_reviews.forget_provider(runtime.resources(), provider_id))
