"""What a user engages with, read from the rows they left behind: the pet types of their
pets and of posts they liked or collected, the topics of posts they engaged with or wrote,
whom they follow and whom those people follow, whom they blocked (either way).

Both the post feed (feed.py) and "recommended for you" products (products.py) score with
these. Every read is a bounded, indexed query (most recent N rows of one user); the result is
a plain dict the feed caches per user (RECOMMEND_PROFILE_SECONDS). docs/recommendations.md.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Comment, Favorite, Like, Pet, Post, PostTopic
from models.users import UserFollow
from pawhome.identity.users import blocked_either_way

# How many of a user's most recent rows of each kind are read.
RECENT_LIKES = 200
RECENT_FAVORITES = 100
RECENT_COMMENTS = 100
RECENT_OWN_POSTS = 50
FOLLOWEES_READ = 200  # whom the user follows (most recent first)
FOLLOWEES_FOR_FOF = 50  # whose follow lists are read for follows of follows
FOF_KEPT = 300
TOPICS_KEPT = 20

# A pet the user owns says more than a post they liked.
OWN_PET_WEIGHT = 3.0
FAVORITE_WEIGHT = 2.0
LIKE_WEIGHT = 1.0
COMMENT_WEIGHT = 1.0
OWN_POST_WEIGHT = 1.0


def normalised(counts: Mapping[Any, float], keep: int | None = None) -> dict[str, float]:
    """Weights scaled so the strongest is 1.0 (keys as strings: the profile is JSON)."""
    if not counts:
        return {}
    top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if keep is not None:
        top = top[:keep]
    strongest = top[0][1] or 1.0
    return {str(k): round(v / strongest, 4) for k, v in top if v > 0}


async def own_pet_species(session: AsyncSession, user_id: int) -> list[str]:
    return list((await session.execute(select(Pet.species).where(
        Pet.owner_id == user_id, Pet.deleted_at.is_(None)))).scalars())


async def liked_post_ids(session: AsyncSession, user_id: int) -> list[int]:
    return [int(i) for i in (await session.execute(
        select(Like.target_id).where(Like.user_id == user_id, Like.target_type == "post")
        .order_by(Like.created_at.desc()).limit(RECENT_LIKES))).scalars()]


async def pet_weights(session: AsyncSession, user_id: int,
                      liked: list[int] | None = None,
                      favorited: list[int] | None = None) -> dict[str, float]:
    """{species: weight in (0, 1]}: the user's own pets, then the pet types of posts they
    collected and liked."""
    counts: defaultdict[str, float] = defaultdict(float)
    for species in await own_pet_species(session, user_id):
        counts[species] += OWN_PET_WEIGHT
    if liked is None:
        liked = await liked_post_ids(session, user_id)
    if favorited is None:
        favorited = await _favorited_post_ids(session, user_id)
    weight_of = {i: LIKE_WEIGHT for i in liked}
    for i in favorited:
        weight_of[i] = weight_of.get(i, 0.0) + FAVORITE_WEIGHT
    if weight_of:
        for post_id, pet_types in await session.execute(
                select(Post.id, Post.pet_types).where(Post.id.in_(list(weight_of)))):
            for species in pet_types or []:
                if isinstance(species, str):
                    counts[species] += weight_of[post_id]
    return normalised(counts)


async def _favorited_post_ids(session: AsyncSession, user_id: int) -> list[int]:
    return [int(i) for i in (await session.execute(
        select(Favorite.post_id).where(Favorite.user_id == user_id)
        .order_by(Favorite.created_at.desc()).limit(RECENT_FAVORITES))).scalars()]


async def _commented_post_ids(session: AsyncSession, user_id: int) -> list[int]:
    return [int(i) for i in (await session.execute(
        select(Comment.post_id).where(Comment.author_id == user_id,
                                      Comment.deleted_at.is_(None))
        .order_by(Comment.id.desc()).limit(RECENT_COMMENTS))).scalars()]


async def _own_post_ids(session: AsyncSession, user_id: int) -> list[int]:
    return [int(i) for i in (await session.execute(
        select(Post.id).where(Post.author_id == user_id, Post.deleted_at.is_(None))
        .order_by(Post.created_at.desc()).limit(RECENT_OWN_POSTS))).scalars()]


async def _topic_weights(session: AsyncSession,
                         weight_of: dict[int, float]) -> dict[str, float]:
    if not weight_of:
        return {}
    counts: defaultdict[int, float] = defaultdict(float)
    for post_id, topic_id in await session.execute(
            select(PostTopic.post_id, PostTopic.topic_id)
            .where(PostTopic.post_id.in_(list(weight_of)))):
        counts[int(topic_id)] += weight_of[int(post_id)]
    return normalised(counts, TOPICS_KEPT)


async def _followees(session: AsyncSession, user_id: int) -> list[int]:
    return [int(i) for i in (await session.execute(
        select(UserFollow.followee_id).where(UserFollow.follower_id == user_id)
        .order_by(UserFollow.created_at.desc()).limit(FOLLOWEES_READ))).scalars()]


async def _follows_of_follows(session: AsyncSession, user_id: int, followees: list[int],
                              hidden: set[int]) -> dict[str, float]:
    """{user id: share of the user's followees who follow them}, the followees themselves,
    the user and anyone blocked either way left out."""
    readers = followees[:FOLLOWEES_FOR_FOF]
    if not readers:
        return {}
    counts: dict[int, float] = {}
    for followee_id, n in await session.execute(
            select(UserFollow.followee_id, func.count())
            .where(UserFollow.follower_id.in_(readers))
            .group_by(UserFollow.followee_id)):
        followee_id = int(followee_id)
        if followee_id == user_id or followee_id in hidden or followee_id in followees:
            continue
        counts[followee_id] = float(n)
    return normalised(counts, FOF_KEPT)


async def profile_of(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """The user's signals as a JSON-ready dict:
    {"pets": {species: w}, "topics": {topic id: w}, "fof": {user id: w},
     "followees": [ids], "hidden": [ids blocked either way]}."""
    liked = await liked_post_ids(session, user_id)
    favorited = await _favorited_post_ids(session, user_id)
    commented = await _commented_post_ids(session, user_id)
    own = await _own_post_ids(session, user_id)
    engaged: dict[int, float] = {}
    for ids, weight in ((liked, LIKE_WEIGHT), (favorited, FAVORITE_WEIGHT),
                        (commented, COMMENT_WEIGHT), (own, OWN_POST_WEIGHT)):
        for i in ids:
            engaged[i] = engaged.get(i, 0.0) + weight
    hidden = await blocked_either_way(session, user_id)
    followees = [i for i in await _followees(session, user_id) if i not in hidden]
    return {
        "pets": await pet_weights(session, user_id, liked, favorited),
        "topics": await _topic_weights(session, engaged),
        "fof": await _follows_of_follows(session, user_id, followees, hidden),
        "followees": followees,
        "hidden": sorted(hidden),
    }


EMPTY_PROFILE: dict[str, Any] = {"pets": {}, "topics": {}, "fof": {}, "followees": [],
                                 "hidden": []}
