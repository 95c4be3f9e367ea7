"""Denormalised counters: profile counters (`user_stats`), the live counters of a post's open
page, and the reconciliation that proves every counter equals the rows it counts.

Counters move only in the transaction that writes their rows, by relative SQL updates
(`SET n = n + 1`, never read-modify-write), and only when a row really changed. The periodic
`reconcile_all` recounts from the rows in batches and repairs drift; docs/interactions.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Comment, Favorite, Like, Post, UserStats
from models.users import User, UserFollow
from pawhome.platform import topics
from pawhome.platform.db import Database
from pawhome.platform.hot_keys import Coalescer
from pawhome.platform.resources import Resources

log = logging.getLogger("pawhome.community.counters")
_publishing = Coalescer()  # live counter reads, one at a time per post (publish_post_counters)

STAT_FIELDS = ("followers", "following", "likes_received", "posts")


# -- writing ----------------------------------------------------------------------------------


def _dialect_insert(session: AsyncSession, model: Any):
    if session.bind.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.mysql import insert
    return insert(model)


async def insert_once(session: AsyncSession, model: Any, **values: Any) -> bool:
    """INSERT a row keyed by its primary key unless it exists; True if this inserted it.

    INSERT IGNORE (MySQL) / ON CONFLICT DO NOTHING (SQLite): a concurrent identical insert
    waits on the first one's row lock and then finds the duplicate, so of fifty simultaneous
    double taps exactly one reports True, and no transaction is aborted for it.
    """
    return await insert_many_once(session, model, [values]) > 0


async def insert_many_once(session: AsyncSession, model: Any,
                           rows: list[dict[str, Any]]) -> int:
    """`insert_once` for several rows in one statement; how many it really inserted."""
    if not rows:
        return 0
    statement = _dialect_insert(session, model).values(rows)
    if session.bind.dialect.name == "sqlite":
        statement = statement.on_conflict_do_nothing()
    else:
        statement = statement.prefix_with("IGNORE")
    result = await session.execute(statement)
    return int(result.rowcount)


async def bump(session: AsyncSession, user_id: int, **deltas: int) -> None:
    """Move a user's profile counters by relative amounts, e.g. bump(s, uid, posts=+1).

    Creates the user's row on first use. Call it in the transaction that wrote the counted
    row (posts on create/delete, follows, likes), after that write.
    """
    deltas = {name: int(delta) for name, delta in deltas.items() if delta}
    unknown = set(deltas) - set(STAT_FIELDS)
    if unknown:
        raise ValueError(f"unknown user counters: {sorted(unknown)}")
    if not deltas:
        return
    statement = _dialect_insert(session, UserStats).values(
        user_id=user_id, **{name: max(0, delta) for name, delta in deltas.items()})
    table = UserStats.__table__.c
    changes = {name: table[name] + delta for name, delta in deltas.items()}
    if session.bind.dialect.name == "sqlite":
        statement = statement.on_conflict_do_update(index_elements=["user_id"], set_=changes)
    else:
        statement = statement.on_duplicate_key_update(**changes)
    await session.execute(statement)


async def _bump_row(session: AsyncSession, model: Any, row_id: int,
                   deltas: dict[str, int]) -> None:
    columns = model.__table__.c
    await session.execute(
        update(model).where(model.id == row_id)
        .values({columns[name]: columns[name] + delta for name, delta in deltas.items()})
        .execution_options(synchronize_session=False))


async def bump_post(session: AsyncSession, post_id: int, **deltas: int) -> None:
    """posts.<name> += delta, relative, e.g. bump_post(s, 7, like_count=-1)."""
    await _bump_row(session, Post, post_id, deltas)


async def bump_comment(session: AsyncSession, comment_id: int, **deltas: int) -> None:
    """comments.<name> += delta, relative, e.g. bump_comment(s, 9, reply_count=+1)."""
    await _bump_row(session, Comment, comment_id, deltas)


# -- reading ----------------------------------------------------------------------------------


async def stats_of(session: AsyncSession, user_id: int) -> dict[str, int]:
    row = await session.get(UserStats, user_id, populate_existing=True)
    return {name: int(getattr(row, name) or 0) if row else 0 for name in STAT_FIELDS}


async def post_counts(session: AsyncSession, post_id: int,
                      latest: bool = False) -> dict[str, int]:
    """What a post page shows live: {"likes", "comments", "favorites", "shares"}.

    `latest` inside a write transaction: a shared-lock read, which sees the latest committed
    values rather than the transaction's snapshot (a double tap that changed nothing still
    answers with the count the first tap made)."""
    query = select(Post.like_count, Post.comment_count, Post.favorite_count,
                   Post.share_count).where(Post.id == post_id)
    if latest:
        query = query.with_for_update(read=True)
    found = (await session.execute(query.execution_options(populate_existing=True))).first()
    if found is None:
        return {"likes": 0, "comments": 0, "favorites": 0, "shares": 0}
    return {"likes": int(found[0]), "comments": int(found[1]), "favorites": int(found[2]),
            "shares": int(found[3])}


def post_topic(post_id: int) -> str:
    return f"post:{int(post_id)}"


async def publish_post_counters(resources: Resources, post_id: int) -> None:
    """After a commit: tell the watchers of "post:<id>" its counters, read fresh from the
    database (not the values inside the finished transaction, which a later commit may
    already have passed). Best effort: Redis away loses one live update, not the write.
    One read at a time per post: the changes committed while it runs are published by one
    more read after it (a like burst costs a few reads, not one per like)."""

    async def refresh() -> None:
        try:
            async with resources.db.session(read_committed=True) as session:
                counts = await post_counts(session, post_id)
            await topics.publish_counter(resources.cache, post_topic(post_id), counts)
        except Exception as error:  # the write committed; a live counter is not worth a 500
            log.warning("live counters of post %s not published: %r", post_id, error)

    await _publishing.run((id(resources), post_id), refresh)


# -- reconciliation ---------------------------------------------------------------------------

# What each counter counts (docs/interactions.md): a comment counts while it is visible and
# not deleted; likes and favorites count as rows, whatever their target's state.
def counted_comment():
    return and_(Comment.deleted_at.is_(None), Comment.status == "visible")


@dataclass
class ReconcileReport:
    checked: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, checked: int, fixed: int) -> None:
        self.checked[kind] = self.checked.get(kind, 0) + checked
        self.fixed[kind] = self.fixed.get(kind, 0) + fixed

    @property
    def total_fixed(self) -> int:
        return sum(self.fixed.values())


async def _grouped(session: AsyncSession, query: Any) -> dict[int, int]:
    return {int(k): int(n) for k, n in (await session.execute(query)).all()}


async def true_post_counts(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, int]]:
    likes = await _grouped(session, select(Like.target_id, func.count()).where(
        Like.target_type == "post", Like.target_id.in_(ids)).group_by(Like.target_id))
    comments = await _grouped(session, select(Comment.post_id, func.count())
                              .where(Comment.post_id.in_(ids), counted_comment())
                              .group_by(Comment.post_id))
    favorites = await _grouped(session, select(Favorite.post_id, func.count())
                               .where(Favorite.post_id.in_(ids)).group_by(Favorite.post_id))
    return {i: {"like_count": likes.get(i, 0), "comment_count": comments.get(i, 0),
                "favorite_count": favorites.get(i, 0)} for i in ids}


async def true_comment_counts(session: AsyncSession,
                               ids: list[int]) -> dict[int, dict[str, int]]:
    likes = await _grouped(session, select(Like.target_id, func.count()).where(
        Like.target_type == "comment", Like.target_id.in_(ids)).group_by(Like.target_id))
    replies = await _grouped(session, select(Comment.parent_id, func.count())
                             .where(Comment.parent_id.in_(ids), counted_comment())
                             .group_by(Comment.parent_id))
    return {i: {"like_count": likes.get(i, 0), "reply_count": replies.get(i, 0)} for i in ids}


async def true_user_stats(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, int]]:
    followers = await _grouped(session, select(UserFollow.followee_id, func.count())
                               .where(UserFollow.followee_id.in_(ids))
                               .group_by(UserFollow.followee_id))
    following = await _grouped(session, select(UserFollow.follower_id, func.count())
                               .where(UserFollow.follower_id.in_(ids))
                               .group_by(UserFollow.follower_id))
    post_likes = await _grouped(session, select(Post.author_id, func.count())
                                .join(Like, and_(Like.target_type == "post",
                                                 Like.target_id == Post.id))
                                .where(Post.author_id.in_(ids)).group_by(Post.author_id))
    comment_likes = await _grouped(session, select(Comment.author_id, func.count())
                                   .join(Like, and_(Like.target_type == "comment",
                                                    Like.target_id == Comment.id))
                                   .where(Comment.author_id.in_(ids))
                                   .group_by(Comment.author_id))
    posts = await _grouped(session, select(Post.author_id, func.count())
                           .where(Post.author_id.in_(ids), Post.deleted_at.is_(None))
                           .group_by(Post.author_id))
    return {i: {"followers": followers.get(i, 0), "following": following.get(i, 0),
                "likes_received": post_likes.get(i, 0) + comment_likes.get(i, 0),
                "posts": posts.get(i, 0)} for i in ids}


async def _repair(db: Database, model: Any, key: Any, row_id: int, recount: Any,
                  names: tuple[str, ...]) -> bool:
    """Repair one row's counters under its row lock; True if anything was wrong.

    With the row locked, a writer that already changed its counted rows but not yet this
    counter waits behind us and then applies its relative +1/-1 on top of a count that (read
    committed) does not include its uncommitted row: the result is exact either way.
    """
    async with db.session(read_committed=True) as session, session.begin():
        stored = (await session.execute(
            select(*[getattr(model, n) for n in names]).where(key == row_id)
            .with_for_update())).first()
        if stored is None:
            return False
        truth = (await recount(session, [row_id]))[row_id]
        wrong = {n: truth[n] for n, value in zip(names, stored, strict=True)
                 if int(value or 0) != truth[n]}
        if wrong:
            await session.execute(update(model).where(key == row_id).values(**wrong)
                                  .execution_options(synchronize_session=False))
            log.warning("repaired %s %s counters: %s", model.__tablename__, row_id,
                        {n: f"{int(v or 0)}->{truth[n]}" for n, v in zip(names, stored, strict=True)
                         if n in wrong})
        return bool(wrong)


async def _reconcile_table(db: Database, kind: str, model: Any, key: Any, recount: Any,
                           names: tuple[str, ...], batch_size: int,
                           report: ReconcileReport) -> None:
    after = 0
    while True:
        async with db.session(read_committed=True) as session:
            rows = (await session.execute(
                select(key, *[getattr(model, n) for n in names]).where(key > after)
                .order_by(key).limit(batch_size))).all()
            if not rows:
                return
            truth = await recount(session, [int(r[0]) for r in rows])
        suspects = [int(r[0]) for r in rows
                    if any(int(v or 0) != truth[int(r[0])][n]
                           for n, v in zip(names, r[1:], strict=True))]
        fixed = 0
        for row_id in suspects:  # re-checked under the row lock: a write may have been mid-way
            fixed += await _repair(db, model, key, row_id, recount, names)
        report.add(kind, len(rows), fixed)
        after = int(rows[-1][0])
        if len(rows) < batch_size:
            return


async def _reconcile_user_stats(db: Database, batch_size: int, report: ReconcileReport) -> None:
    """Every user, not only those with a stats row: a missing row is a row of zeros."""
    after = 0
    while True:
        async with db.session(read_committed=True) as session:
            ids = [int(i) for i in (await session.execute(
                select(User.id).where(User.id > after).order_by(User.id)
                .limit(batch_size))).scalars()]
            if not ids:
                return
            truth = await true_user_stats(session, ids)
            stored = {int(r.user_id): r for r in (await session.execute(
                select(UserStats).where(UserStats.user_id.in_(ids)))).scalars()}
        suspects = []
        for user_id in ids:
            row = stored.get(user_id)
            values = {n: int(getattr(row, n) or 0) if row else 0 for n in STAT_FIELDS}
            if values != truth[user_id] or (row is None and any(truth[user_id].values())):
                suspects.append(user_id)
        fixed = 0
        for user_id in suspects:
            async with db.session(read_committed=True) as session, session.begin():
                await insert_once(session, UserStats, user_id=user_id)
            fixed += await _repair(db, UserStats, UserStats.user_id, user_id, true_user_stats,
                                   STAT_FIELDS)
        report.add("user_stats", len(ids), fixed)
        after = ids[-1]
        if len(ids) < batch_size:
            return


async def reconcile_all(db: Database, batch_size: int = 500) -> ReconcileReport:
    """Recount posts, comments and profile counters from their rows; repair what drifted."""
    report = ReconcileReport()
    await _reconcile_table(db, "post", Post, Post.id, true_post_counts,
                           ("like_count", "comment_count", "favorite_count"), batch_size, report)
    await _reconcile_table(db, "comment", Comment, Comment.id, true_comment_counts,
                           ("like_count", "reply_count"), batch_size, report)
    await _reconcile_user_stats(db, batch_size, report)
    return report
