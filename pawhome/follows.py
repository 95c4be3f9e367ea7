"""Follows between users: the one module that writes `user_follows`.

Direct messages read it for the "only people I follow can message me" privacy rule; the
community issue exposes follow/unfollow over REST (and adds counters and notifications) on
top of these functions.
"""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import User, UserFollow
from pawhome.errors import Forbidden, NotFound, ValidationFailed, field_error
from pawhome.users import is_blocked


async def is_following(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Does `follower_id` follow `followee_id`?"""
    found = await session.execute(select(UserFollow.follower_id).where(
        UserFollow.follower_id == follower_id, UserFollow.followee_id == followee_id))
    return found.first() is not None


async def follow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Follow a user; True if this created the follow, False if it already existed.

    Nobody follows themselves, a banned or unknown user (404), or across a block in either
    direction (403). Caller commits.
    """
    if follower_id == followee_id:
        raise ValidationFailed(errors=[field_error("user_id", "you cannot follow yourself")])
    followee = await session.get(User, followee_id)
    if followee is None or followee.status == "banned":
        raise NotFound("User not found")
    if await is_blocked(session, followee_id, follower_id) or \
            await is_blocked(session, follower_id, followee_id):
        raise Forbidden("You cannot follow this user")
    if await is_following(session, follower_id, followee_id):
        return False
    try:
        async with session.begin_nested():
            session.add(UserFollow(follower_id=follower_id, followee_id=followee_id))
            await session.flush()
    except IntegrityError:
        return False  # a concurrent identical request followed first
    return True


async def unfollow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    """Stop following; True if a follow was removed. Caller commits."""
    result = await session.execute(delete(UserFollow).where(
        UserFollow.follower_id == follower_id, UserFollow.followee_id == followee_id))
    return result.rowcount > 0
