"""Tasks of the moderation queue: review a post, a comment or an image (pawhome/moderation/reviews.py).

Each takes an id and is idempotent: content that is no longer pending is left alone and a
verdict on the same text is reused, so redelivery and retries cost no WeChat quota. WeChat
outages and rate limits are transient (retried with backoff).
"""
from __future__ import annotations

from workers import runtime
from workers.base import PERIODIC
from workers.celery_app import celery_app


@celery_app.task(name="moderation.review_post")
def review_post(post_id: int) -> str:
    """Decide a pending post from its text and images; returns its state afterwards."""
    from pawhome.moderation import reviews as moderation

    return runtime.run(moderation.review_post(runtime.resources(), post_id))


@celery_app.task(name="moderation.review_comment")
def review_comment(comment_id: int) -> str:
    """Check a comment's text; hides or removes it if needed; returns its state."""
    from pawhome.moderation import reviews as moderation

    return runtime.run(moderation.review_comment(runtime.resources(), comment_id))


@celery_app.task(name="moderation.review_media")
def review_media(media_id: int) -> str:
    """Start WeChat's asynchronous check of a ready image; returns its moderation state."""
    from pawhome.moderation import reviews as moderation

    return runtime.run(moderation.review_media(runtime.resources(), media_id))


@celery_app.task(name="moderation.expire_media_checks", **PERIODIC)
def expire_media_checks() -> int:
    """Beat: images whose WeChat verdict is overdue go to the review queue."""
    from pawhome.moderation import reviews as moderation

    return runtime.run(moderation.expire_media_checks(runtime.resources()))
