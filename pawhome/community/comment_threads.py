"""Reading comment threads: a post's top-level comments (newest or most liked first, each with
its first replies) and a comment's replies, as the viewer may see them, with the viewer's like
flags. Writing comments is pawhome/community/comments.py; docs/interactions.md.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Comment
from pawhome.community import comments, likes, posts
from pawhome.community.comments import get_visible_comment, visible_to
from pawhome.platform.errors import ValidationFailed, field_error
from pawhome.platform.pagination import cursor_result, decode_cursor
from pawhome.platform.resources import Resources


async def render(session: AsyncSession, viewer_id: int | None,
                 rows: list[Comment]) -> list[dict[str, Any]]:
    """Comments as the API shows them, with whether the viewer liked each."""
    liked: set[int] = set()
    if viewer_id is not None and rows:
        liked = await likes.has_liked(session, viewer_id, "comment", [r.id for r in rows])
    return await comments.render(session, rows, liked)


def _position(position: dict[str, Any] | None, keys: tuple[str, ...]) -> tuple | None:
    if not position:
        return None
    try:
        values = []
        for key in keys:
            raw = position[key]
            values.append(dt.datetime.fromisoformat(raw) if key == "c" else int(raw))
        return tuple(values)
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from None


async def _first_replies(session: AsyncSession, viewer_id: int | None, parent_ids: list[int],
                         per_parent: int) -> dict[int, list[Comment]]:
    """The oldest `per_parent` replies the viewer may see under each parent, in one query."""
    if not parent_ids or per_parent <= 0:
        return {}
    number = func.row_number().over(partition_by=Comment.parent_id,
                                    order_by=(Comment.created_at, Comment.id)).label("n")
    ranked = select(Comment.id, number).where(
        Comment.parent_id.in_(parent_ids), visible_to(viewer_id)).subquery()
    rows = (await session.execute(
        select(Comment).join(ranked, ranked.c.id == Comment.id).where(ranked.c.n <= per_parent)
        .order_by(Comment.created_at, Comment.id))).scalars()
    grouped: dict[int, list[Comment]] = {}
    for row in rows:
        grouped.setdefault(int(row.parent_id), []).append(row)
    return grouped


async def list_comments(session: AsyncSession, settings: Any, viewer_id: int | None,
                        post_id: int, sort: Literal["newest", "hot"],
                        position: dict[str, Any] | None,
                        limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Top-level comments of a post, newest or most liked first, each with its first few
    replies and reply_count."""
    await posts.get_visible_post(session, viewer_id, post_id)
    query = select(Comment).where(Comment.post_id == post_id, Comment.parent_id.is_(None),
                                  visible_to(viewer_id))
    if sort == "hot":
        after = _position(position, ("l", "i"))
        if after:
            query = query.where(or_(Comment.like_count < after[0],
                                    and_(Comment.like_count == after[0], Comment.id < after[1])))
        query = query.order_by(Comment.like_count.desc(), Comment.id.desc())
    else:
        after = _position(position, ("c", "i"))
        if after:
            query = query.where(or_(Comment.created_at < after[0],
                                    and_(Comment.created_at == after[0], Comment.id < after[1])))
        query = query.order_by(Comment.created_at.desc(), Comment.id.desc())
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    replies = await _first_replies(session, viewer_id, [r.id for r in rows],
                                   settings.comment_preview_replies)
    every_reply = [reply for row in rows for reply in replies.get(row.id, [])]
    shapes = {s["id"]: s for s in await render(session, viewer_id, rows + every_reply)}
    items = []
    for row in rows:
        item = dict(shapes[row.id])
        item["replies"] = [shapes[reply.id] for reply in replies.get(row.id, [])]
        items.append(item)
    next_position = None
    if more and rows:
        last = rows[-1]
        next_position = {"l": last.like_count, "i": last.id} if sort == "hot" else \
            {"c": last.created_at.isoformat(), "i": last.id}
    return items, next_position


async def list_replies(session: AsyncSession, viewer_id: int | None, comment_id: int,
                       position: dict[str, Any] | None,
                       limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Replies under a top-level comment, oldest first (a conversation reads downwards)."""
    parent = await get_visible_comment(session, viewer_id, comment_id)
    if parent.parent_id is not None:
        parent = await get_visible_comment(session, viewer_id, parent.parent_id)
    query = select(Comment).where(Comment.parent_id == parent.id, visible_to(viewer_id))
    after = _position(position, ("c", "i"))
    if after:
        query = query.where(or_(Comment.created_at > after[0],
                                and_(Comment.created_at == after[0], Comment.id > after[1])))
    rows = list((await session.execute(
        query.order_by(Comment.created_at, Comment.id).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_position = {"c": rows[-1].created_at.isoformat(), "i": rows[-1].id} \
        if more and rows else None
    return await render(session, viewer_id, rows), next_position


# -- for the endpoints: each opens its own session ----------------------------------------


async def post_comments(resources: Resources, viewer_id: int | None, post_id: int,
                        sort: Literal["newest", "hot"], cursor: str | None,
                        limit: int) -> dict[str, Any]:
    """GET /v1/posts/{id}/comments: a cursor page of the post's top-level comments."""
    async with resources.db.session() as session:
        items, position = await list_comments(session, resources.settings, viewer_id, post_id,
                                              sort, decode_cursor(cursor), limit)
    return cursor_result(items, position)


async def comment_replies(resources: Resources, viewer_id: int | None, comment_id: int,
                          cursor: str | None, limit: int) -> dict[str, Any]:
    """GET /v1/comments/{id}/replies: a cursor page of a thread's replies, oldest first."""
    async with resources.db.session() as session:
        items, position = await list_replies(session, viewer_id, comment_id,
                                             decode_cursor(cursor), limit)
    return cursor_result(items, position)
