"""Follows between users: the one module that writes `user_follows` and the followers /
following profile counters.

Direct messages read it for the "only people I follow can message me" privacy rule, posts for
followers-only visibility and the following feed. A follow is an INSERT IGNORE on the pair's
primary key; counters move (relative updates, same transaction) only when a row really went
in or out, and the followee hears a `follow` notification. docs/interactions.md.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.users import User, UserFollow
from pawhome.community import counters
from pawhome.identity import users
from pawhome.identity.users import is_blocked, is_following
from pawhome.messaging import notifications
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import Forbidden, NotFound, ValidationFailed, field_error
from pawhome.platform.pagination import cursor_result, decode_cursor
from pawhome.platform.resources import Resources


async def _bump_pair(session: AsyncSession, follower_id: int, followee_id: int,
                     delta: int) -> None:
    # Stats rows are locked in ascending user id order, so A following B while B follows A
    # cannot deadlock.
    for user_id in sorted((follower_id, followee_id)):
        if user_id == follower_id:
            await counters.bump(session, user_id, following=delta)
        else:
            await counters.bump(session, user_id, followers=delta)


async def follow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Follow a user; True if this created the follow, False if it already existed.

    Nobody follows themselves (422), a banned or unknown user (404), or across a block in
    either direction (403). A new follow moves both users' counters and notifies the
    followee. Caller commits.
    """
    if follower_id == followee_id:
        raise ValidationFailed(errors=[field_error("user_id", "you cannot follow yourself")])
    followee = await session.get(User, followee_id)
    if followee is None or followee.status == "banned":
        raise NotFound("User not found")
    if await is_blocked(session, followee_id, follower_id) or \
            await is_blocked(session, follower_id, followee_id):
        raise Forbidden("You cannot follow this user")
    created = await counters.insert_once(session, UserFollow, follower_id=follower_id,
                                         followee_id=followee_id, created_at=utcnow())
    if not created:
        return False  # already following, or a concurrent identical request was first
    await _bump_pair(session, follower_id, followee_id, +1)

    await notifications.notify(session, followee_id, "follow", "followed",
                               actor_id=follower_id, target_type="user",
                               target_id=follower_id, group_key=f"follow:{followee_id}")
    return True


async def unfollow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Stop following; True if a follow was removed. Caller commits."""
    result = await session.execute(delete(UserFollow).where(
        UserFollow.follower_id == follower_id, UserFollow.followee_id == followee_id))
    removed = result.rowcount > 0
    if removed:
        await _bump_pair(session, follower_id, followee_id, -1)
    return removed


@users.user_blocked.connect
async def remove_follows_between(session: AsyncSession, a: int, b: int) -> int:
    """Drop the follows both ways (a block ends them); returns how many went. Caller commits."""
    return int(await unfollow(session, a, b)) + int(await unfollow(session, b, a))


# -- REST-facing units of work ----------------------------------------------------------------


async def set_following(resources: Resources, follower_id: int, followee_id: int,
                        following: bool) -> dict[str, Any]:
    """Follow or unfollow (idempotent); returns {"following", "changed", "followers"} with
    the followee's follower count after the change."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        if following:
            changed = await follow(session, follower_id, followee_id)
        else:
            if follower_id == followee_id:
                raise ValidationFailed(errors=[field_error("user_id",
                                                           "you cannot follow yourself")])
            target = await session.get(User, followee_id)
            if target is None:
                raise NotFound("User not found")
            changed = await unfollow(session, follower_id, followee_id)
        stats = await counters.stats_of(session, followee_id)
        return {"following": following, "changed": changed, "followers": stats["followers"]}

    return await run_transaction(resources.db, work)


async def _visible_user(session: AsyncSession, viewer_id: int, user_id: int) -> User:
    """A banned user, or one who blocked the viewer (or whom the viewer blocked), shows no
    profile lists to the viewer."""
    user = await session.get(User, user_id)
    if user is None or user.status == "banned":
        raise NotFound("User not found")
    if viewer_id != user_id and (await is_blocked(session, user_id, viewer_id) or
                                 await is_blocked(session, viewer_id, user_id)):
        raise NotFound("User not found")
    return user


async def list_follows(resources: Resources, viewer_id: int, user_id: int, direction: str,
                       cursor: str | None, limit: int) -> dict[str, Any]:
    """direction "followers" (who follows user_id) or "following" (whom user_id follows),
    most recent first, cursor-paginated; banned users are left out."""
    position = decode_cursor(cursor)
    async with resources.db.session() as session:
        items, next_position = await _follows_page(session, viewer_id, user_id, direction,
                                                   position, limit)
    return cursor_result(items, next_position)


async def _follows_page(session: AsyncSession, viewer_id: int, user_id: int, direction: str,
                        position: dict[str, Any] | None,
                        limit: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    await _visible_user(session, viewer_id, user_id)
    if direction == "followers":
        mine, other = UserFollow.followee_id, UserFollow.follower_id
    else:
        mine, other = UserFollow.follower_id, UserFollow.followee_id
    query = (select(UserFollow.created_at, User).join(User, User.id == other)
             .where(mine == user_id, User.status != "banned"))
    if position:
        try:
            at, after_id = dt.datetime.fromisoformat(str(position["c"])), int(position["i"])
        except (KeyError, TypeError, ValueError):
            raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")]) from None
        query = query.where(or_(UserFollow.created_at < at,
                                and_(UserFollow.created_at == at, other < after_id)))
    rows = (await session.execute(
        query.order_by(UserFollow.created_at.desc(), other.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    followed = set()
    if rows:
        followed = {int(i) for i in (await session.execute(select(UserFollow.followee_id).where(
            UserFollow.follower_id == viewer_id,
            UserFollow.followee_id.in_([u.id for _, u in rows])))).scalars()}
    items = [{"id": u.id, "nickname": u.nickname, "avatar_url": u.avatar_url,
              "followed_at": at, "followed_by_me": u.id in followed} for at, u in rows]
    next_position = {"c": rows[-1][0].isoformat(), "i": rows[-1][1].id} if more and rows \
        else None
    return items, next_position


async def user_stats(resources: Resources, viewer_id: int, user_id: int) -> dict[str, Any]:
    """Profile counters {followers, following, likes_received, posts} and the viewer's
    relation to the user."""
    async with resources.db.session() as session:
        await _visible_user(session, viewer_id, user_id)
        stats = await counters.stats_of(session, user_id)
        return {"user_id": user_id, **stats,
                "followed_by_me": viewer_id != user_id and
                await is_following(session, viewer_id, user_id),
                "follows_me": viewer_id != user_id and
                await is_following(session, user_id, viewer_id)}
