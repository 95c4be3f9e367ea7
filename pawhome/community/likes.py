"""Likes on posts and comments: the one module that writes `likes`.

One like per user and target is the table's primary key; a like is an INSERT IGNORE and the
target's like_count and its author's likes_received move only when a row really went in (or,
for unlike, really came out), by relative updates in the same transaction. Fifty double taps
at once therefore make one like and a counter of one. The likes of one target take turns in
the process before they open their transaction, so a burst on a hot post holds one pooled
connection per process, not one per waiting like. docs/interactions.md.
"""
from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Comment, Like, Post
from pawhome.community import comments, counters, posts
from pawhome.messaging import notifications
from pawhome.platform.db import run_transaction
from pawhome.platform.hot_keys import KeyedLock
from pawhome.platform.resources import Resources

TargetType = Literal["post", "comment"]
# A burst of likes on one target takes turns here rather than on the row's lock in MariaDB
# while holding pooled connections (pawhome/platform/hot_keys.py).
_writers = KeyedLock()


async def _target(session: AsyncSession, user_id: int, target_type: TargetType,
                  target_id: int) -> tuple[int, int, str]:
    """(author_id, post_id, text) of a target the user may see; 404 otherwise."""
    if target_type == "post":
        post = await posts.get_visible_post(session, user_id, target_id)
        return post.author_id, post.id, post.text
    comment = await comments.get_visible_comment(session, user_id, target_id)
    return comment.author_id, comment.post_id, comment.text


async def _like_count(session: AsyncSession, target_type: TargetType, target_id: int) -> int:
    model = Post if target_type == "post" else Comment
    # A shared-lock read sees the latest committed count, not this transaction's snapshot.
    found = await session.execute(select(model.like_count).where(model.id == target_id)
                                  .with_for_update(read=True)
                                  .execution_options(populate_existing=True))
    return int(found.scalar_one_or_none() or 0)


async def _notify_like(session: AsyncSession, user_id: int, author_id: int,
                       target_type: TargetType, target_id: int, post_id: int,
                       text: str) -> None:
    """Coalescing per target: a burst of likes is one "A and 99 others liked your post"."""
    anonymous = False
    if target_type == "comment":
        if not await comments.may_see_post(session, author_id, post_id):
            return
        # The author of an anonymous post liking a comment on it stays anonymous.
        post = await session.get(Post, post_id)
        anonymous = post is not None and post.is_anonymous and post.author_id == user_id
    await notifications.notify(
        session, author_id, "like", f"{target_type}_liked", actor_id=user_id,
        target_type=target_type, target_id=target_id,
        payload={"post_id": post_id, "text": comments.excerpt(text)},
        group_key=f"like:{target_type}:{target_id}", anonymous_actor=anonymous)


async def set_like(resources: Resources, user_id: int, target_type: TargetType, target_id: int,
                   liked: bool) -> dict[str, Any]:
    """Like (liked=True) or unlike a post or comment the user may see; idempotent. Returns
    {"liked", "like_count", "changed"}. The author hears a `like` notification (not for
    unlikes), the post's watchers the new counters."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        author_id, post_id, text = await _target(session, user_id, target_type, target_id)
        if liked:
            changed = await counters.insert_once(session, Like, target_type=target_type,
                                                 target_id=target_id, user_id=user_id,
                                                 created_at=utcnow())
        else:
            changed = (await session.execute(delete(Like).where(
                Like.target_type == target_type, Like.target_id == target_id,
                Like.user_id == user_id))).rowcount > 0
        if changed:
            delta = +1 if liked else -1
            if target_type == "post":
                await counters.bump_post(session, target_id, like_count=delta)
            else:
                await counters.bump_comment(session, target_id, like_count=delta)
            await counters.bump(session, author_id, likes_received=delta)
            if liked:
                await _notify_like(session, user_id, author_id, target_type, target_id,
                                   post_id, text)
        return {"liked": liked, "like_count": await _like_count(session, target_type, target_id),
                "changed": bool(changed), "post_id": post_id}

    async with _writers.hold((target_type, target_id)):
        result = await run_transaction(resources.db, work)
    post_id = result.pop("post_id")
    if result["changed"] and target_type == "post":
        await counters.publish_post_counters(resources, post_id)
    return result


async def has_liked(session: AsyncSession, user_id: int, target_type: TargetType,
                    target_ids: list[int]) -> set[int]:
    """Which of these targets the user liked (for `liked` flags in lists)."""
    if not target_ids:
        return set()
    found = await session.execute(select(Like.target_id).where(
        Like.target_type == target_type, Like.user_id == user_id,
        Like.target_id.in_(target_ids)))
    return {int(i) for i in found.scalars()}
