"""Community beat jobs on the default queue: write buffered post views to the table, and
recompute hot scores (the hot feed's sorted set) and topic heat. Both are idempotent: a
late or doubled run is harmless (pawhome/community/feeds.py)."""
from __future__ import annotations

from workers import runtime
from workers.base import PERIODIC
from workers.celery_app import celery_app


@celery_app.task(name="default.flush_post_views", **PERIODIC)
def flush_post_views() -> int:
    """Add the views buffered in Redis to posts.view_count; returns views written."""
    from pawhome.community import feeds

    resources = runtime.resources()
    return runtime.run(feeds.flush_view_counts(resources.db, resources.cache))


@celery_app.task(name="default.recompute_hot_posts", **PERIODIC)
def recompute_hot_posts() -> int:
    """Rescore recent posts into the hot sorted set and reheat their topics."""
    from pawhome.community import feeds

    resources = runtime.resources()
    return runtime.run(feeds.recompute_hot(resources.db, resources.cache, resources.settings))


@celery_app.task(name="default.drop_post_from_feeds")
def drop_post_from_feeds(post_id: int) -> None:
    """A post became visible or stopped being visible: drop the cached first pages and its
    place in the hot set (enqueued by posts.set_status with the change)."""
    from pawhome.community import feeds

    runtime.run(feeds.drop_post_from_feeds(runtime.resources().cache, int(post_id)))
