"""Comments and one level of replies: the one module that writes `comments` and keeps the
post's comment_count and each comment's reply_count equal to the comments that count.

A reply always hangs under a top-level comment (a reply to a reply attaches to its top-level
comment and names the replied-to author). Every writer of a thread locks the top-level
comment first, so replies, deletions and status changes of one thread run one at a time.
Reading threads (a post's comments, a comment's replies, with the viewer's like flags) is
pawhome/community/comment_threads.py.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.base import utcnow
from models.community import CONTENT_STATES, Comment, Post
from models.users import User, UserBlock
from pawhome.community import counters, mentions, posts
from pawhome.community.post_rendering import excerpt
from pawhome.identity import users
from pawhome.messaging import notifications
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import Forbidden, NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, Id, distinct
from pawhome.platform.hooks import Hook
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from settings import get_settings

# Request models carry the configured limits, so the OpenAPI document a gateway serves states
# the limits it enforces.
_settings = get_settings()

MAX_ID = 2**63 - 1

# Run in the transaction that created a comment, with (session, comment_id): moderation
# connects its review (pawhome/moderation/reviews.py).
comment_submitted: Hook[[AsyncSession, int]] = Hook("community.comment_submitted")


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=_settings.comment_max_length, pattern=NOT_BLANK)
    reply_to_comment_id: int | None = Field(None, ge=1, le=MAX_ID)
    mentions: list[Id] = Field(default_factory=list, max_length=mentions.MAX_MENTIONS,
                               json_schema_extra=distinct(),
                               description="ids of the people @mentioned (the text keeps "
                                           "@nickname for display)")

    @field_validator("mentions")
    @classmethod
    def _distinct_mentions(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("ids must not repeat")
        return value

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


# -- who sees what ----------------------------------------------------------------------------


def visible_to(viewer_id: int | None) -> ColumnElement[bool]:
    """Live comments the viewer may read: visible ones, plus the viewer's own while held for
    review; never those of someone the viewer blocked or who blocked the viewer."""
    live = Comment.deleted_at.is_(None)
    if viewer_id is None:
        return and_(live, Comment.status == "visible")
    blocked = select(UserBlock.blocked_id).where(UserBlock.user_id == viewer_id)
    blockers = select(UserBlock.user_id).where(UserBlock.blocked_id == viewer_id)
    return and_(
        live,
        or_(Comment.status == "visible",
            and_(Comment.author_id == viewer_id, Comment.status.in_(("pending", "hidden")))),
        Comment.author_id.not_in(blocked),
        Comment.author_id.not_in(blockers))


async def get_visible_comment(session: AsyncSession, viewer_id: int | None,
                              comment_id: int) -> Comment:
    """The comment if the viewer may see it and its post; 404 otherwise, whatever the
    reason (a private post's comments do not exist for others)."""
    row = (await session.execute(select(Comment).where(
        Comment.id == comment_id, visible_to(viewer_id)))).scalar_one_or_none()
    if row is None:
        raise NotFound("Comment not found")
    try:
        await posts.get_visible_post(session, viewer_id, row.post_id)
    except NotFound:
        raise NotFound("Comment not found") from None
    return row


def counts(status: str, deleted_at: dt.datetime | None) -> bool:
    """Does a comment in this state count in comment_count / reply_count?"""
    return status == "visible" and deleted_at is None


async def _lock(session: AsyncSession, comment_id: int) -> Comment | None:
    return (await session.execute(
        select(Comment).where(Comment.id == comment_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()


async def _move_counters(session: AsyncSession, comment: Comment, delta: int) -> None:
    """comment_count of the post and reply_count of the thread follow one comment in or out."""
    await counters.bump_post(session, comment.post_id, comment_count=delta)
    if comment.parent_id is not None:
        await counters.bump_comment(session, comment.parent_id, reply_count=delta)


async def may_see_post(session: AsyncSession, user_id: int, post_id: int) -> bool:
    try:
        await posts.get_visible_post(session, user_id, post_id)
    except NotFound:
        return False
    return True


# -- writing ----------------------------------------------------------------------------------


async def create_comment(resources: Resources, user_id: int, post_id: int,
                         body: CommentBody) -> dict[str, Any]:
    """Comment on a post, or reply to one of its comments; returns the comment as shown.

    The word filter runs first (a hard hit is a 422 naming `text`; soft hits hold the comment
    as pending, visible to its author only, until moderation decides). The post author hears
    `comment`, the replied-to user `reply` — only when the comment is visible and they may
    still see the post.
    """
    limit = resources.settings.comment_max_length
    if len(body.text) > limit:
        raise ValidationFailed(errors=[field_error("text", f"at most {limit} characters")])
    soft_hits = screen_text(body.text, "text")

    async def work(session: AsyncSession) -> dict[str, Any]:
        post = await posts.get_visible_post(session, user_id, post_id)
        parent: Comment | None = None
        reply_to_user_id = None
        if body.reply_to_comment_id is not None:
            # A 404 about the body's reference names it: the post itself was found.
            missing = NotFound("Comment not found", errors=[field_error(
                "reply_to_comment_id", "no such comment under this post")])
            try:
                target = await get_visible_comment(session, user_id, body.reply_to_comment_id)
            except NotFound:
                raise missing from None
            if target.post_id != post.id:
                raise missing
            parent = await _lock(session, target.parent_id or target.id)
            if parent is None or parent.deleted_at is not None:
                raise missing
            reply_to_user_id = target.author_id
        now = utcnow()
        row = Comment(post_id=post.id, author_id=user_id,
                      parent_id=parent.id if parent else None,
                      reply_to_user_id=reply_to_user_id, text=body.text,
                      status="pending" if soft_hits else "visible", created_at=now)
        session.add(row)
        await session.flush()
        if counts(row.status, None):
            await _move_counters(session, row, +1)
        await mentions.record(session, "comment", row.id, user_id, body.mentions)
        await comment_submitted.run(session, row.id)
        if row.status == "visible":
            await _notify_new_comment(session, row, post)
            await _notify_mentions(session, row, post)
        return (await render(session, [row], liked=set()))[0]  # nobody liked it yet

    view = await run_transaction(resources.db, work)
    if view["status"] == "visible":
        await counters.publish_post_counters(resources, post_id)
    return view


def by_anonymous_author(row: Comment, post: Post) -> bool:
    """Is this the anonymous post's author commenting on it? Then they stay anonymous."""
    return bool(post.is_anonymous) and row.author_id == post.author_id


async def _notify_mentions(session: AsyncSession, row: Comment, post: Post) -> None:
    async def may_see(user_id: int) -> bool:
        try:
            await get_visible_comment(session, user_id, row.id)
        except NotFound:
            return False
        return True

    await mentions.notify_pending(session, "comment", row.id, may_see, post_id=post.id,
                                  text=excerpt(row.text),
                                  anonymous=by_anonymous_author(row, post))


async def _notify_new_comment(session: AsyncSession, row: Comment, post: Post) -> None:
    payload = {"post_id": post.id, "comment_id": row.id, "text": excerpt(row.text)}
    if row.parent_id is None:
        await notifications.notify(session, post.author_id, "comment", "post_commented",
                                   actor_id=row.author_id, target_type="post",
                                   target_id=post.id, payload=payload)
        return
    recipient = row.reply_to_user_id
    if recipient and recipient != row.author_id and \
            await may_see_post(session, recipient, post.id):
        await notifications.notify(session, recipient, "reply", "comment_replied",
                                   actor_id=row.author_id, target_type="comment",
                                   target_id=row.parent_id, payload=payload,
                                   anonymous_actor=by_anonymous_author(row, post))


async def delete_comment(resources: Resources, user_id: int, comment_id: int,
                         is_admin: bool = False) -> dict[str, Any]:
    """Delete a comment: its author, the post's author or an admin. Deleting a top-level
    comment deletes its replies with it. Counters drop by what was counted."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        visible = await get_visible_comment(session, user_id, comment_id) if not is_admin \
            else await session.get(Comment, comment_id)
        if visible is None or visible.deleted_at is not None:
            raise NotFound("Comment not found")
        if visible.parent_id is not None:
            await _lock(session, visible.parent_id)  # the thread's lock first, always
        row = await _lock(session, comment_id)
        if row is None or row.deleted_at is not None:
            raise NotFound("Comment not found")
        post = await session.get(Post, row.post_id)
        if not (is_admin or row.author_id == user_id or
                (post is not None and post.author_id == user_id)):
            raise Forbidden("Only the comment's author or the post's author may delete it")
        now = utcnow()
        removed = 0
        if row.parent_id is None:
            removed = (await session.execute(
                update(Comment).where(Comment.parent_id == row.id, Comment.deleted_at.is_(None),
                                      Comment.status == "visible")
                .values(deleted_at=now).execution_options(synchronize_session=False))).rowcount
            await session.execute(
                update(Comment).where(Comment.parent_id == row.id, Comment.deleted_at.is_(None))
                .values(deleted_at=now).execution_options(synchronize_session=False))
            if removed:
                await counters.bump_comment(session, row.id, reply_count=-removed)
        was_counted = counts(row.status, row.deleted_at)
        row.deleted_at = now
        await session.flush()
        if was_counted:
            await _move_counters(session, row, -1)
        if removed:
            await counters.bump_post(session, row.post_id, comment_count=-removed)
        return {"id": row.id, "post_id": row.post_id, "deleted": True,
                "replies_deleted": int(removed)}

    result = await run_transaction(resources.db, work)
    await counters.publish_post_counters(resources, result["post_id"])
    return result


async def set_status(session: AsyncSession, comment_id: int, status: str) -> Comment:
    """Move a comment to a moderation state (moderation task, admins), keeping the counters
    exact: a comment leaving `visible` stops counting, one entering it starts. Caller
    commits; publish counters after with counters.publish_post_counters."""
    if status not in CONTENT_STATES:
        raise ValueError(f"unknown comment status {status!r}")
    found = await session.get(Comment, comment_id)
    if found is None:
        raise NotFound("Comment not found")
    if found.parent_id is not None:
        await _lock(session, found.parent_id)
    row = await _lock(session, comment_id)
    assert row is not None
    before = counts(row.status, row.deleted_at)
    row.status = status
    await session.flush()
    after = counts(row.status, row.deleted_at)
    if before != after:
        await _move_counters(session, row, +1 if after else -1)
    if status == "visible" and row.deleted_at is None:
        post = await session.get(Post, row.post_id)
        if post is not None:
            await _notify_mentions(session, row, post)  # last: notify locks recipients
    return row


# -- rendering --------------------------------------------------------------------------------


async def render(session: AsyncSession, rows: list[Comment],
                 liked: set[int]) -> list[dict[str, Any]]:
    """Comments as the API shows them: author and replied-to user, and whether the viewer
    liked each (`liked`: the ids of those the viewer liked)."""
    if not rows:
        return []
    people_ids = {r.author_id for r in rows} | {r.reply_to_user_id for r in rows
                                                 if r.reply_to_user_id}
    people = {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(people_ids)))).scalars()}
    # The author of an anonymous post stays anonymous in its comments (theirs, and replies
    # to them).
    hidden_author = {post_id: author_id for post_id, author_id in await session.execute(
        select(Post.id, Post.author_id).where(Post.id.in_({r.post_id for r in rows}),
                                              Post.is_anonymous.is_(True)))}

    def person(user_id: int | None, post_id: int) -> dict[str, Any] | None:
        if user_id is None:
            return None
        if hidden_author.get(post_id) == user_id:
            return dict(users.ANONYMOUS_PERSON)
        user = people.get(user_id)
        return {"id": user_id, "nickname": user.nickname if user else "",
                "avatar_url": user.avatar_url if user else ""}

    return [{
        "id": r.id, "post_id": r.post_id, "parent_id": r.parent_id,
        "author": person(r.author_id, r.post_id),
        "reply_to_user": person(r.reply_to_user_id, r.post_id),
        "text": r.text, "status": r.status, "like_count": r.like_count,
        "reply_count": r.reply_count, "liked": r.id in liked, "created_at": r.created_at,
    } for r in rows]
