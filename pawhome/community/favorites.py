"""Favorites (a user's collection of posts) and shares: the one module that writes
`favorites` and `posts.share_count`, and that builds share cards.

Both go through `posts.get_visible_post`, so a private or followers-only post can be neither
collected nor shared by someone who cannot see it, and its card never leaks. A favorite is an
INSERT IGNORE that moves favorite_count only when a row went in, like a like.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Favorite, Post
from models.media import Media
from models.users import User
from pawhome.community import comments, counters, posts
from pawhome.community.post_rendering import author_view
from pawhome.integrations.storage import storage_for
from pawhome.media.uploads import jpeg_variant
from pawhome.messaging import chat
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import AttachmentRefused, NotFound, ValidationFailed, field_error
from pawhome.platform.pagination import cursor_result, decode_cursor
from pawhome.platform.resources import Resources
from settings import Settings, get_settings

TITLE_CHARS = 40
# A card's cover: a mid-size JPEG (a video's poster) opens everywhere WeChat shares go.
COVER_WIDTH = 480


async def set_favorite(resources: Resources, user_id: int, post_id: int,
                       favorited: bool) -> dict[str, Any]:
    """Collect (favorited=True) or drop a post the user may see; idempotent. Returns
    {"favorited", "favorite_count", "changed"}."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        await posts.get_visible_post(session, user_id, post_id)
        if favorited:
            changed = await counters.insert_once(session, Favorite, user_id=user_id,
                                                 post_id=post_id, created_at=utcnow())
        else:
            changed = (await session.execute(delete(Favorite).where(
                Favorite.user_id == user_id, Favorite.post_id == post_id))).rowcount > 0
        if changed:
            await counters.bump_post(session, post_id, favorite_count=+1 if favorited else -1)
        found = await counters.post_counts(session, post_id, latest=True)
        return {"favorited": favorited, "favorite_count": found["favorites"],
                "changed": bool(changed)}

    result = await run_transaction(resources.db, work)
    if result["changed"]:
        await counters.publish_post_counters(resources, post_id)
    return result


async def list_favorites(resources: Resources, user_id: int, cursor: str | None,
                         limit: int) -> dict[str, Any]:
    """The user's collection, most recently collected first, as cards, cursor-paginated.
    Posts the user can no longer see (deleted, made private, author blocked) are left out
    of the page (it may then be short; follow nextCursor)."""
    position = decode_cursor(cursor)
    async with resources.db.session() as session:
        items, next_position = await _favorites_page(session, resources.settings, user_id,
                                                     position, limit)
    return cursor_result(items, next_position)


async def _favorites_page(session: AsyncSession, settings: Settings, user_id: int,
                          position: dict[str, Any] | None,
                          limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query = select(Favorite).where(Favorite.user_id == user_id)
    if position:
        try:
            at, after_id = dt.datetime.fromisoformat(str(position["c"])), int(position["i"])
        except (KeyError, TypeError, ValueError):
            raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from None
        query = query.where(or_(Favorite.created_at < at,
                                and_(Favorite.created_at == at, Favorite.post_id < after_id)))
    rows = list((await session.execute(
        query.order_by(Favorite.created_at.desc(), Favorite.post_id.desc())
        .limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for row in rows:
        try:
            post = await posts.get_visible_post(session, user_id, row.post_id)
        except NotFound:
            continue
        card = await share_card(session, settings, post)
        items.append({**card, "favorited_at": row.created_at,
                      "like_count": post.like_count, "comment_count": post.comment_count,
                      "favorite_count": post.favorite_count})
    next_position = {"c": rows[-1].created_at.isoformat(), "i": rows[-1].post_id} \
        if more and rows else None
    return items, next_position


# -- shares -----------------------------------------------------------------------------------


async def _cover(session: AsyncSession, settings: Settings, post: Post) -> dict[str, Any] | None:
    media_ids = list(post.media_ids or [])
    if not media_ids:
        return None
    media = await session.get(Media, int(media_ids[0]))
    if media is None or media.status != "ready":
        return None
    found = jpeg_variant(media, COVER_WIDTH)
    if found is None:
        return None

    name, key = found
    return {"media_id": media.id, "variant": name, "url": storage_for(settings).public_url(key)}


async def share_card(session: AsyncSession, settings: Settings, post: Post) -> dict[str, Any]:
    """What a shared post shows outside the app: never call it for a post the receiver of
    the card may not see (callers load the post with posts.get_visible_post)."""
    author = await session.get(User, post.author_id)
    return {"post_id": post.id, "title": comments.excerpt(post.text, TITLE_CHARS),
            "cover": await _cover(session, settings, post),
            "author": author_view(post, author)}


async def share_post(resources: Resources, user_id: int, post_id: int) -> dict[str, Any]:
    """Record a share and return the card {post_id, title, cover, author}. One user's
    shares of one post count once per SHARE_COUNT_WINDOW_SECONDS (repeat taps return the
    card without counting): share_count measures reach, not tapping."""
    async with resources.db.session() as session:
        await posts.get_visible_post(session, user_id, post_id)
    window = int(resources.settings.share_count_window_seconds)
    counted = bool(await resources.cache.redis.set(
        resources.cache.key("share", post_id, user_id), "1", nx=True, ex=max(1, window)))

    async def work(session: AsyncSession) -> dict[str, Any]:
        post = await posts.get_visible_post(session, user_id, post_id)
        if counted:
            await counters.bump_post(session, post_id, share_count=+1)
        card = await share_card(session, resources.settings, post)
        shares = (await counters.post_counts(session, post_id, latest=True))["shares"]
        return {"counted": counted, "share_count": shares, "card": card}

    try:
        result = await run_transaction(resources.db, work)
    except Exception:
        if counted:  # nothing was counted: the next tap may count
            await resources.cache.redis.delete(resources.cache.key("share", post_id, user_id))
        raise
    if counted:
        await counters.publish_post_counters(resources, post_id)
    return result


# -- post cards in direct messages ---------------------------------------------------------------


async def check_chat_post_card(session: AsyncSession, sender_id: int, recipient_id: int,
                               post_id: int) -> dict[str, Any]:
    """A post shared in a DM carries its share card. Both people must be able to see the
    post, so a followers-only or private post never reaches someone it was not meant for."""
    post = await posts.get_visible_post(session, sender_id, post_id)
    try:
        await posts.get_visible_post(session, recipient_id, post_id)
    except NotFound:
        raise AttachmentRefused("The recipient cannot see this post", errors=[
            field_error("card.id", "not visible to the recipient")]) from None
    return await share_card(session, get_settings(), post)


chat.register_attachment_check("post", check_chat_post_card)
