"""Shared set-up of the interaction tests (likes, comments, favorites, follows, counters):
users with tokens made straight in the database, posts inserted as rows, and the truth of
every counter recounted from the rows."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from models.base import utcnow
from models.community import Comment, Favorite, Like, Post, UserStats
from models.users import User, UserFollow, UserSettings
from pawhome.community import counters
from pawhome.identity import tokens, users
from pawhome.platform import codec
from tests.helpers import Session


async def make_user(resources: Any, nickname: str = "") -> Session:
    """A user and an access token, without the login endpoint (whose IP rate limit a test of
    200 users would meet)."""
    async with resources.db.session() as session, session.begin():
        # Logged in just now, as a user of the mini-program is: WeChat content checks
        # (the moderation task) only run for a recently seen openid.
        user = User(openid="t-" + uuid.uuid4().hex[:24],
                    nickname=nickname or "u" + uuid.uuid4().hex[:6], role="user",
                    status="active", last_login_at=utcnow())
        session.add(user)
        await session.flush()
        session.add(UserSettings(user_id=user.id, notification_prefs={}, privacy_prefs={}))
        user_id = user.id
    token, _ = tokens.issue_access_token(resources.settings, user_id, "user", uuid.uuid4().hex)
    return Session(user_id, token, "", "")


async def make_post(resources: Any, author_id: int, visibility: str = "public",
                    status: str = "visible", text: str = "柯基掉毛怎么办\n第二行",
                    media_ids: list[int] | None = None) -> int:
    """A post row as the posts module would leave it once moderation passed it."""
    async with resources.db.session() as session, session.begin():
        post = Post(author_id=author_id, text=text, visibility=visibility, status=status,
                    media_kind="image" if media_ids else "none", media_ids=media_ids or [],
                    pet_types=[], pet_ids=[])
        session.add(post)
        await session.flush()
        await counters.bump(session, author_id, posts=+1)
        return post.id


async def block(resources: Any, blocker_id: int, blocked_id: int) -> None:
    async with resources.db.session() as session, session.begin():
        await users.block_user(session, resources.cache, blocker_id, blocked_id)


async def follow_row(resources: Any, follower_id: int, followee_id: int) -> None:
    from pawhome.community import follows

    async with resources.db.session() as session, session.begin():
        await follows.follow(session, follower_id, followee_id)


async def post_row(resources: Any, post_id: int) -> Post:
    async with resources.db.session() as session:
        return await session.get(Post, post_id)


async def comment_row(resources: Any, comment_id: int) -> Comment:
    async with resources.db.session() as session:
        return await session.get(Comment, comment_id)


async def stats(resources: Any, user_id: int) -> dict[str, int]:
    async with resources.db.session() as session:
        return await counters.stats_of(session, user_id)


async def count(resources: Any, query: Any) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(query)).scalar_one())


async def like_rows(resources: Any, target_type: str, target_id: int) -> int:
    return await count(resources, select(func.count()).select_from(Like).where(
        Like.target_type == target_type, Like.target_id == target_id))


async def favorite_rows(resources: Any, post_id: int) -> int:
    return await count(resources, select(func.count()).select_from(Favorite).where(
        Favorite.post_id == post_id))


async def follow_rows(resources: Any, *, follower_id: int | None = None,
                      followee_id: int | None = None) -> int:
    query = select(func.count()).select_from(UserFollow)
    if follower_id is not None:
        query = query.where(UserFollow.follower_id == follower_id)
    if followee_id is not None:
        query = query.where(UserFollow.followee_id == followee_id)
    return await count(resources, query)


async def assert_counters_true(resources: Any, post_ids: tuple[int, ...] = (),
                               comment_ids: tuple[int, ...] = (),
                               user_ids: tuple[int, ...] = ()) -> None:
    """These posts', comments' and users' counters equal their rows (recounted the way the
    reconciliation does, without repairing anything)."""
    async with resources.db.session() as session:
        if post_ids:
            truth = await counters.true_post_counts(session, list(post_ids))
            for post_id in post_ids:
                post = await session.get(Post, post_id)
                stored = {n: getattr(post, n) for n in truth[post_id]}
                assert stored == truth[post_id], (post_id, stored, truth[post_id])
        if comment_ids:
            truth = await counters.true_comment_counts(session, list(comment_ids))
            for comment_id in comment_ids:
                comment = await session.get(Comment, comment_id)
                stored = {n: getattr(comment, n) for n in truth[comment_id]}
                assert stored == truth[comment_id], (comment_id, stored, truth[comment_id])
        if user_ids:
            truth = await counters.true_user_stats(session, list(user_ids))
            for user_id in user_ids:
                stored = await counters.stats_of(session, user_id)
                assert stored == truth[user_id], (user_id, stored, truth[user_id])


async def stats_row(resources: Any, user_id: int) -> UserStats | None:
    async with resources.db.session() as session:
        return await session.get(UserStats, user_id)


class TopicListener:
    """Listens on a live topic's Redis channel the way a gateway does."""

    def __init__(self, resources: Any, topic: str) -> None:
        self.resources = resources
        self.topic = topic
        self.pubsub = resources.cache.redis.pubsub()

    async def __aenter__(self) -> TopicListener:
        from pawhome.platform.events import topic_channel_key

        await self.pubsub.subscribe(topic_channel_key(self.resources.cache, self.topic))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.pubsub.aclose()

    async def wait_for(self, predicate, timeout: float = 5.0) -> dict[str, Any]:
        """The first topic event whose data satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True,
                                                    timeout=0.2)
            if message is None:
                continue
            event = codec.loads(message["data"])["ev"]
            if predicate(event["data"]):
                return event
        raise AssertionError(f"no matching event on {self.topic} within {timeout}s")


async def gather(*calls: Any) -> list[Any]:
    return await asyncio.gather(*calls)
