"""Searching posts and topics: their search documents (registered with the search engine,
pawhome/search/index.py) and the queries behind GET /v1/search/posts and /v1/search/topics.

A post is searchable while it is visible and public; results are checked against the rows
now (visibility, blocks, banned authors) and carry highlighted snippets. docs/search.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.community import Board, Post, PostTopic, Topic
from models.users import User
from pawhome.community.post_rendering import author_view
from pawhome.identity.users import hidden_from
from pawhome.platform.resources import Resources
from pawhome.search import index as search
from pawhome.search.index import (
    PET_TYPE_WORDS,
    SearchQuery,
    document_tokens,
    encode_filter,
    highlight,
)


async def _post_document(session: AsyncSession, post_id: int) -> str | None:
    post = await session.get(Post, post_id, with_for_update=True, populate_existing=True)
    # Followers-only and private posts are kept out of the index altogether.
    if post is None or post.deleted_at is not None or post.status != "visible" \
            or post.visibility != "public":
        return None
    topics = list((await session.execute(
        select(Topic.name).join(PostTopic, PostTopic.topic_id == Topic.id)
        .where(PostTopic.post_id == post_id))).scalars())
    board = await session.get(Board, post.board_id) if post.board_id else None
    pet_types = [p for p in (post.pet_types or []) if isinstance(p, str)]
    texts = [post.text, *topics, board.name if board else "", post.location_name,
             *(PET_TYPE_WORDS.get(p, p) for p in pet_types)]
    filters = [("pet", p) for p in pet_types] + [("topic", t) for t in topics]
    return document_tokens(texts, filters)


async def _topic_document(session: AsyncSession, topic_id: int) -> str | None:
    topic = await session.get(Topic, topic_id, with_for_update=True, populate_existing=True)
    return document_tokens([topic.name]) if topic is not None else None


search.register_document("post", Post, _post_document)
search.register_document("topic", Topic, _topic_document)


async def search_posts(session: AsyncSession, settings: Any, viewer_id: int | None,
                       query: SearchQuery, *, topic: str | None = None,
                       pet_type: str | None = None, offset: int = 0,
                       limit: int = 10) -> tuple[list[dict[str, Any]], int]:
    """Public, visible posts holding every query word, best match first then newest, with
    highlighted snippets; visibility and blocks are checked against the rows now."""
    filters = []
    if pet_type:
        filters.append(encode_filter("pet", pet_type))
    if topic:
        filters.append(encode_filter("topic", topic.strip().lstrip("#")))
    matches = search.match(session, "post", query, filters).subquery("m")
    conditions = [Post.status == "visible", Post.visibility == "public",
                  Post.deleted_at.is_(None), User.status != "banned"]
    hidden = hidden_from(viewer_id, Post.author_id)
    if hidden is not None:
        conditions.append(~hidden)
    base = (select(Post, User, matches.c.score)
            .join(matches, matches.c.doc_id == Post.id)
            .join(User, User.id == Post.author_id)
            .where(and_(*conditions)))
    total = (await session.execute(
        select(func.count()).select_from(base.with_only_columns(Post.id).subquery()))
    ).scalar_one()
    rows = (await session.execute(
        base.order_by(matches.c.score.desc(), Post.created_at.desc(), Post.id.desc())
        .offset(offset).limit(limit))).all()
    topic_names: dict[int, list[str]] = {}
    if rows:
        for post_id, name in await session.execute(
                select(PostTopic.post_id, Topic.name).join(Topic, Topic.id == PostTopic.topic_id)
                .where(PostTopic.post_id.in_([post.id for post, _, _ in rows]))):
            topic_names.setdefault(post_id, []).append(name)
    width = settings.search_snippet_chars
    items = [{
        "id": post.id,
        "author": author_view(post, author),
        "anonymous": bool(post.is_anonymous),
        "snippet": highlight(post.text, query.words, width),
        "topics": topic_names.get(post.id, []),
        "board_id": post.board_id,
        "media_kind": post.media_kind,
        "media_ids": post.media_ids or [],
        "pet_types": post.pet_types or [],
        "like_count": post.like_count,
        "comment_count": post.comment_count,
        "created_at": post.created_at,
        "score": round(float(score or 0), 6),
    } for post, author, score in rows]
    return items, int(total)


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def search_topics(session: AsyncSession, query: SearchQuery, *, offset: int = 0,
                        limit: int = 10) -> tuple[list[dict[str, Any]], int]:
    """Topics named like the query: exact name first, then names starting with it (the
    unique index serves the prefix), then names holding every word; hotter first within."""
    name = query.text.lstrip("#").strip()
    matches = search.match(session, "topic", query)
    prefix = Topic.name.like(_like_prefix(name), escape="\\") if name else None
    condition = Topic.id.in_(select(matches.subquery().c.doc_id))
    if prefix is not None:
        condition = or_(prefix, condition)
    base = select(Topic).where(condition)
    total = (await session.execute(
        select(func.count()).select_from(base.with_only_columns(Topic.id).subquery()))
    ).scalar_one()
    order = [Topic.heat.desc(), Topic.post_count.desc(), Topic.id.desc()]
    if prefix is not None:
        order = [(Topic.name == name).desc(), prefix.desc(), *order]
    topics = (await session.execute(base.order_by(*order).offset(offset).limit(limit))).scalars()
    items = [{"id": t.id, "name": t.name, "name_html": highlight(t.name, query.words, 64),
              "post_count": t.post_count, "heat": t.heat, "last_post_at": t.last_post_at}
             for t in topics]
    return items, int(total)


async def find_posts(resources: Resources, viewer_id: int, q: str, page: int, limit: int,
                     topic: str | None = None, pet_type: str | None = None) -> dict[str, Any]:
    """GET /v1/search/posts: a page of public posts holding every word of `q`."""
    query = await search.prepare_query(resources, viewer_id, q, page)
    async with resources.db.session() as session:
        items, total = await search_posts(session, resources.settings, viewer_id, query,
                                          topic=topic, pet_type=pet_type,
                                          offset=(page - 1) * limit, limit=limit)
    return search.result_page(items, total, page, limit)


async def find_topics(resources: Resources, viewer_id: int, q: str, page: int,
                      limit: int) -> dict[str, Any]:
    """GET /v1/search/topics: a page of topics named like `q`."""
    query = await search.prepare_query(resources, viewer_id, q, page)
    async with resources.db.session() as session:
        items, total = await search_topics(session, query, offset=(page - 1) * limit,
                                           limit=limit)
    return search.result_page(items, total, page, limit)
