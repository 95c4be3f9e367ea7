"""Likes on posts and comments: the one module that writes `likes`.

One like per user and target is the table's primary key, and the target's like_count and its
author's likes_received move only by the rows that really went in (or came out), by relative
updates in the same transaction. Fifty double taps at once therefore make one like and a
counter of one. The likes of one target are written by group commit in the process: the taps
that arrive while a batch of that target is being written go together into the next
transaction — one for a burst, not one per like — and each caller still gets the answer its
own tap would have had alone. docs/interactions.md.
"""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Comment, Like, Post
from pawhome.community import comments, counters, posts
from pawhome.messaging import notifications
from pawhome.platform.db import Overtaken, run_transaction
from pawhome.platform.errors import AppError, Conflict, NotFound
from pawhome.platform.hot_keys import KeyedBatches
from pawhome.platform.resources import Resources

TargetType = Literal["post", "comment"]

# Taps on one target in one batch at most: a batch is one transaction, kept well inside the
# session deadline.
_BATCH_LIMIT = 500


@dataclass(slots=True)
class _Tap:
    """One set_like call waiting for its batch."""
    resources: Resources
    target_type: TargetType
    target_id: int
    user_id: int
    liked: bool


async def _targets(session: AsyncSession, target_type: TargetType, target_id: int,
                   locked: Post | Comment | None,
                   user_ids: list[int]) -> dict[int, tuple[int, int, str] | AppError]:
    """For each of these users, (author_id, post_id, text) of the target if they may see it,
    else the 404 they get. A post's rule is checked for all of them at once."""
    if locked is None:
        return {user: NotFound(f"{target_type.capitalize()} not found") for user in user_ids}
    if isinstance(locked, Post):
        may_see = await posts.viewers_who_may_see(session, locked, user_ids)
        hidden = NotFound("Post not found")
        return {user: (locked.author_id, locked.id, locked.text) if user in may_see else hidden
                for user in user_ids}
    seen: dict[int, tuple[int, int, str] | AppError] = {}
    for user in user_ids:
        try:
            comment = await comments.get_visible_comment(session, user, target_id)
        except AppError as error:  # 404: this user may not see it (others may)
            seen[user] = error
        else:
            seen[user] = (comment.author_id, comment.post_id, comment.text)
    return seen


async def _notify_likes(session: AsyncSession, likers: list[int], author_id: int,
                        target_type: TargetType, target_id: int, post_id: int,
                        text: str) -> None:
    """The author hears of the likes (in the order given), coalesced per target: a burst is
    one "A and 99 others liked your post"."""
    if target_type == "comment":
        if not await comments.may_see_post(session, author_id, post_id):
            return
        # The author of an anonymous post liking a comment on it stays anonymous.
        post = await session.get(Post, post_id)
        if post is not None and post.is_anonymous and post.author_id in likers:
            likers = [u for u in likers if u != post.author_id]
            await notifications.notify(
                session, author_id, "like", "comment_liked", actor_id=post.author_id,
                target_type=target_type, target_id=target_id,
                payload={"post_id": post_id, "text": comments.excerpt(text)},
                anonymous_actor=True)
    if likers:
        await notifications.notify_actors(
            session, author_id, "like", f"{target_type}_liked", likers, target_type,
            target_id, {"post_id": post_id, "text": comments.excerpt(text)},
            f"like:{target_type}:{target_id}")


async def _liked_already(session: AsyncSession, target_type: TargetType, target_id: int,
                         user_ids: list[int]) -> set[int]:
    """Which of these users' likes of the target exist, locked (a locking read sees the
    latest committed rows, and no one adds or removes them until this transaction ends)."""
    if not user_ids:
        return set()
    found = await session.execute(select(Like.user_id).where(
        Like.target_type == target_type, Like.target_id == target_id,
        Like.user_id.in_(user_ids)).with_for_update())
    return {int(u) for u in found.scalars()}


@dataclass(slots=True)
class _Written:
    answers: list[dict[str, Any] | BaseException]
    post_id: int
    changed: bool  # rows went in or came out


async def _write_taps(session: AsyncSession, target_type: TargetType, target_id: int,
                      taps: list[_Tap]) -> _Written:
    """One transaction for a batch of taps on one target, in their order: as if each had
    been written alone, one after the other.

    The target's row is locked first: its like_count is then the latest committed count, and
    batches of other processes wait for this one (and it for theirs)."""
    model: type[Post] | type[Comment] = Post if target_type == "post" else Comment
    # The entity: the visibility checks below find it in the session, no second read.
    locked = cast(Post | Comment | None, (await session.execute(
        select(model).where(model.id == target_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none())
    base = int(locked.like_count or 0) if locked is not None else 0
    seen = await _targets(session, target_type, target_id, locked,
                          list(dict.fromkeys(tap.user_id for tap in taps)))
    allowed = [user for user, found in seen.items() if not isinstance(found, AppError)]
    before = await _liked_already(session, target_type, target_id, allowed)
    state = {user: user in before for user in allowed}
    count = base
    likers: list[int] = []
    answers: list[dict[str, Any] | BaseException] = []
    for tap in taps:
        found = seen[tap.user_id]
        if isinstance(found, AppError):
            answers.append(found)
            continue
        changed = state[tap.user_id] != tap.liked
        if changed:
            state[tap.user_id] = tap.liked
            count += 1 if tap.liked else -1
            if tap.liked:
                likers.append(tap.user_id)
        answers.append({"liked": tap.liked, "like_count": count, "changed": changed})
    added = [user for user in allowed if state[user] and user not in before]
    removed = [user for user in allowed if not state[user] and user in before]
    now = utcnow()
    inserted = await counters.insert_many_once(session, Like, [
        {"target_type": target_type, "target_id": target_id, "user_id": user, "created_at": now}
        for user in added])
    deleted = (await session.execute(delete(Like).where(
        Like.target_type == target_type, Like.target_id == target_id,
        Like.user_id.in_(removed)))).rowcount if removed else 0
    if inserted != len(added) or deleted != len(removed):
        # A writer outside the batch changed these rows after they were read (only possible
        # without row locks): decide again from the start.
        raise Overtaken(Conflict("The likes changed meanwhile, try again"))
    if not allowed:
        return _Written(answers, 0, False)
    author_id, post_id, text = cast(tuple[int, int, str], seen[allowed[0]])
    delta = count - base
    if delta:
        if target_type == "post":
            await counters.bump_post(session, target_id, like_count=delta)
        else:
            await counters.bump_comment(session, target_id, like_count=delta)
        await counters.bump(session, author_id, likes_received=delta)
    if likers:  # last: notify locks the recipient
        await _notify_likes(session, likers, author_id, target_type, target_id, post_id, text)
    return _Written(answers, post_id, bool(added or removed))


async def _write_batch(_key: Hashable,
                       taps: list[_Tap]) -> list[dict[str, Any] | BaseException]:
    resources, target_type, target_id = taps[0].resources, taps[0].target_type, \
        taps[0].target_id

    async def work(session: AsyncSession) -> _Written:
        return await _write_taps(session, target_type, target_id, taps)

    written = await run_transaction(resources.db, work)
    if written.changed and target_type == "post":  # once for the batch, after its commit
        await counters.publish_post_counters(resources, written.post_id)
    return written.answers


# The batches of each target in this process (pawhome/platform/hot_keys.py): one writing at a
# time per target, holding one pooled connection however many taps wait.
_writers: KeyedBatches[_Tap, dict[str, Any]] = KeyedBatches(_write_batch, limit=_BATCH_LIMIT)


async def set_like(resources: Resources, user_id: int, target_type: TargetType, target_id: int,
                   liked: bool) -> dict[str, Any]:
    """Like (liked=True) or unlike a post or comment the user may see; idempotent. Returns
    {"liked", "like_count", "changed"}: like_count is the count right after this tap. The
    author hears a `like` notification (not for unlikes), the post's watchers the new
    counters. Answers once the tap committed (with the taps on the same target that came in
    meanwhile)."""
    return await _writers.submit((id(resources), target_type, target_id),
                                 _Tap(resources, target_type, target_id, user_id, liked))


async def has_liked(session: AsyncSession, user_id: int, target_type: TargetType,
                    target_ids: list[int]) -> set[int]:
    """Which of these targets the user liked (for `liked` flags in lists)."""
    if not target_ids:
        return set()
    found = await session.execute(select(Like.target_id).where(
        Like.target_type == target_type, Like.user_id == user_id,
        Like.target_id.in_(target_ids)))
    return {int(i) for i in found.scalars()}
