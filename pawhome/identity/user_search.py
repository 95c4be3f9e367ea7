"""Searching users: their search documents (nickname, and the bio when the user shows it),
registered with the search engine (pawhome/search/index.py), and the query behind
GET /v1/search/users. docs/search.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import User
from pawhome.identity.users import hidden_from, privacy_of
from pawhome.platform.resources import Resources
from pawhome.search import index as search
from pawhome.search.index import SearchQuery, document_tokens, highlight


async def _user_document(session: AsyncSession, user_id: int) -> str | None:
    user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None or user.status == "banned":
        return None
    bio = user.bio if (await privacy_of(session, user_id)).show_bio else ""
    return document_tokens([user.nickname, bio])


search.register_document("user", User, _user_document)


async def search_users(session: AsyncSession, settings: Any, viewer_id: int | None,
                       query: SearchQuery, *, offset: int = 0,
                       limit: int = 10) -> tuple[list[dict[str, Any]], int]:
    """Active users whose nickname (or shown bio) holds every query word; users who blocked
    the viewer, or whom the viewer blocked, are left out."""
    matches = search.match(session, "user", query).subquery("m")
    conditions = [User.status != "banned"]
    hidden = hidden_from(viewer_id, User.id)
    if hidden is not None:
        conditions.append(~hidden)
    base = (select(User, matches.c.score).join(matches, matches.c.doc_id == User.id)
            .where(and_(*conditions)))
    total = (await session.execute(
        select(func.count()).select_from(base.with_only_columns(User.id).subquery()))
    ).scalar_one()
    rows = (await session.execute(
        base.order_by(matches.c.score.desc(), User.id.desc()).offset(offset).limit(limit))).all()
    items = []
    for user, _score in rows:
        show_bio = (await privacy_of(session, user.id)).show_bio
        items.append({
            "id": user.id, "nickname": user.nickname, "avatar_url": user.avatar_url,
            "nickname_html": highlight(user.nickname, query.words, 64),
            "bio_snippet": highlight(user.bio, query.words, settings.search_snippet_chars)
            if show_bio and user.bio else None,
        })
    return items, int(total)


async def find_users(resources: Resources, viewer_id: int, q: str, page: int,
                     limit: int) -> dict[str, Any]:
    """GET /v1/search/users: a page of users whose nickname or shown bio holds `q`."""
    query = await search.prepare_query(resources, viewer_id, q, page)
    async with resources.db.session() as session:
        items, total = await search_users(session, resources.settings, viewer_id, query,
                                          offset=(page - 1) * limit, limit=limit)
    return search.result_page(items, total, page, limit)
