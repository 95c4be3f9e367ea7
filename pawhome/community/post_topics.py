"""#Topics of posts: the one module that writes `topics` and `post_topics`.

A post's topics are the ones its author gives plus those tagged in its text; each topic's
post_count counts the live posts tagged with it (not deleted, not taken down). Topic pages,
hot topics and heat are read in pawhome/community/feeds.py. docs/community.md.
"""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import Insert, delete, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Post, PostTopic, Topic
from pawhome.platform.errors import ValidationFailed, field_error
from pawhome.search import index as search

MAX_TOPICS = 10
MAX_TOPIC_LENGTH = 32

# A topic in the text is `#` followed by 1-32 letters, digits, underscores or CJK characters
# (Unicode word characters) and ended by any other character; a closing `#` (the Weibo style
# `#柯基#`) is allowed and consumed, not needed. The `#` must not follow a word character
# (so "a#b" tags nothing) and a longer run is not a topic. So "#柯基 好可爱", "#柯基#好可爱" and
# "#Corgi!" each tag one topic. Names are NFKC-normalised (full-width letters become ASCII)
# and lower-cased, so #Corgi and #ＣＯＲＧＩ are one topic.
TOPIC_IN_TEXT = re.compile(rf"(?<!\w)#(\w{{1,{MAX_TOPIC_LENGTH}}})(?!\w)#?")
_TOPIC_NAME = re.compile(rf"^\w{{1,{MAX_TOPIC_LENGTH}}}$")


def normalize_topic(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).strip().strip("#").strip().lower()


def topics_in_text(text: str) -> list[str]:
    """Topic names tagged in a post's text, normalised, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in TOPIC_IN_TEXT.finditer(unicodedata.normalize("NFKC", text)):
        seen.setdefault(normalize_topic(match.group(1)), None)
    return list(seen)


def topic_names(given: list[str], text: str) -> list[str]:
    """Given topics first, then those tagged in the text; 422 when invalid or over 10."""
    names: dict[str, None] = {}
    for index, raw in enumerate(given):
        name = normalize_topic(raw)
        if not _TOPIC_NAME.match(name):
            raise ValidationFailed(errors=[field_error(
                f"topics.{index}", "a topic is 1-32 letters, digits, _ or CJK characters")])
        names.setdefault(name, None)
    for name in topics_in_text(text):
        names.setdefault(name, None)
    if len(names) > MAX_TOPICS:
        raise ValidationFailed(errors=[field_error(
            "topics", f"at most {MAX_TOPICS} topics per post (given and #tagged together)")])
    return list(names)


async def _bump_topics(session: AsyncSession, names: list[str], delta: int) -> list[int]:
    """Add `delta` to the post_count of each topic, creating the missing ones; returns
    their ids. One upsert per name, in sorted order, so concurrent posts never deadlock
    and never both create one topic."""
    if not names:
        return []
    now = utcnow()
    dialect = session.get_bind().dialect.name
    for name in sorted(names):
        if delta >= 0:
            values = {"name": name, "post_count": delta, "heat": 0.0, "created_at": now,
                      "last_post_at": now}
            changes = {"post_count": Topic.post_count + delta, "last_post_at": now}
            statement: Insert
            if dialect == "sqlite":
                statement = sqlite.insert(Topic).values(**values).on_conflict_do_update(
                    index_elements=["name"], set_=changes)
            else:
                statement = mysql.insert(Topic).values(**values) \
                    .on_duplicate_key_update(**changes)
            await session.execute(statement)
        else:
            await session.execute(update(Topic).where(Topic.name == name, Topic.post_count > 0)
                                  .values(post_count=Topic.post_count + delta))
    found = select(Topic.id, Topic.post_count, Topic.created_at).where(Topic.name.in_(names))
    if dialect != "sqlite":
        found = found.with_for_update()  # a locking read sees rows committed after our snapshot
    rows = (await session.execute(found)).all()
    if delta >= 0:
        for row in rows:
            if row.created_at == now:  # created by this upsert: make it searchable
                search.index_later(session, "topic", row.id)
    return [row.id for row in rows]


async def set_post_topics(session: AsyncSession, post: Post, names: list[str],
                          counted: bool) -> None:
    """Make the post's topics exactly `names`; `counted`: the post counts in post_count.
    Caller commits."""
    current = dict((await session.execute(
        select(Topic.name, Topic.id).join(PostTopic, PostTopic.topic_id == Topic.id)
        .where(PostTopic.post_id == post.id))).all())
    current_norm = {normalize_topic(n): i for n, i in current.items()}
    added = [n for n in names if n not in current_norm]
    dropped = [n for n in current_norm if n not in names]
    if dropped:
        await session.execute(delete(PostTopic).where(
            PostTopic.post_id == post.id,
            PostTopic.topic_id.in_([current_norm[n] for n in dropped])))
        if counted:
            await _bump_topics(session, dropped, -1)
    if added:
        ids = await _bump_topics(session, added, 1 if counted else 0)
        session.add_all([PostTopic(post_id=post.id, topic_id=i) for i in ids])
    await session.flush()


async def count_post_topics(session: AsyncSession, post_id: int, delta: int) -> None:
    """Move the post_count of every topic of the post by `delta`. Caller commits."""
    names = list((await session.execute(
        select(Topic.name).join(PostTopic, PostTopic.topic_id == Topic.id)
        .where(PostTopic.post_id == post_id))).scalars())
    if names:
        await _bump_topics(session, names, delta)


def counts_in_topics(post: Post) -> bool:
    """Topic post_count counts live posts: not deleted and not taken down."""
    return post.deleted_at is None and post.status != "removed"
