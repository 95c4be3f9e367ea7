"""Posts as the API shows them: one post loaded as an entity, or pages of list rows.

A post's own page renders a loaded `Post`; the feeds and lists read rows (`select_post_rows`,
the post's columns with its author's and board's display fields joined in) and render them
with `render_post_rows`. Both give the same shape.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from models.community import Board, Post, PostTopic, Topic
from models.users import User
from pawhome.identity.users import ANONYMOUS_PERSON
from pawhome.platform import codec
from pawhome.platform.db import Executor, Prepared

# Who an anonymous post's author is shown as, everywhere but to admins.
ANONYMOUS_AUTHOR = ANONYMOUS_PERSON

EXCERPT_CHARS = 60


def excerpt(text: str, chars: int = EXCERPT_CHARS) -> str:
    """The first line of a text, cut to `chars` characters (notifications, share cards)."""
    line = next((part.strip() for part in (text or "").splitlines() if part.strip()), "")
    return line if len(line) <= chars else line[:chars - 1] + "…"


_TOPICS_OF = Prepared(
    select(PostTopic.__table__.c.post_id, Topic.__table__.c.name)
    .join(Topic.__table__, Topic.__table__.c.id == PostTopic.__table__.c.topic_id)
    .where(PostTopic.__table__.c.post_id.in_(bindparam("ids", expanding=True)))
    .order_by(Topic.__table__.c.id))


async def _topics_of(session: Executor, post_ids: list[int]) -> dict[int, list[str]]:
    topics: dict[int, list[str]] = {}
    for post_id, name in await _TOPICS_OF.rows(session, ids=post_ids):
        topics.setdefault(post_id, []).append(name)
    return topics


async def render_posts(session: AsyncSession, posts: list[Post],
                       reveal_author: bool = False) -> list[dict[str, Any]]:
    """Posts as the API shows them, with author, board and topic names loaded in batches.
    `reveal_author` (admins only) names the author of an anonymous post."""
    if not posts:
        return []
    author_ids = {p.author_id for p in posts}
    board_ids = {p.board_id for p in posts if p.board_id}
    authors = {u.id: u for u in (await session.execute(
        select(User).where(User.id.in_(author_ids)))).scalars()}
    boards = {b.id: b for b in (await session.execute(
        select(Board).where(Board.id.in_(board_ids)))).scalars()} if board_ids else {}
    topics = await _topics_of(session, [p.id for p in posts])
    return [post_view(p, authors.get(p.author_id),
                      boards.get(p.board_id) if p.board_id is not None else None,
                      topics.get(p.id, []), reveal_author) for p in posts]


async def render_post(session: AsyncSession, post: Post,
                      reveal_author: bool = False) -> dict[str, Any]:
    return (await render_posts(session, [post], reveal_author))[0]


# Lists (the feeds) read rows, not entities: the columns a post shows with its author's and
# board's display fields joined in, one query per page (Core columns: no ORM compile or
# loading step). Loading Post, User and Board objects for the same page cost about three
# times the CPU.
_POSTS, _USERS, _BOARDS = Post.__table__, User.__table__, Board.__table__
LIST_COLUMNS = (
    *(_POSTS.c[name] for name in (
        "id", "author_id", "text", "media_kind", "media_ids", "pet_types", "pet_ids",
        "location_name", "visibility", "status", "status_reason", "pinned_at", "is_anonymous",
        "like_count",
        "comment_count", "favorite_count", "share_count", "view_count", "hot_score",
        "created_at", "edited_at")),
    _USERS.c.nickname.label("author_nickname"), _USERS.c.avatar_url.label("author_avatar_url"),
    _BOARDS.c.slug.label("board_slug"))
# The Post attributes among LIST_COLUMNS (post_view builds a row from a loaded Post).
_POST_FIELDS = tuple(c.name for c in LIST_COLUMNS if c.table is _POSTS)
# Positions in a row of LIST_COLUMNS (rows may be plain tuples: db.Prepared's).
ROW_ID, ROW_HOT_SCORE, ROW_CREATED_AT = (
    [c.key for c in LIST_COLUMNS].index(name) for name in ("id", "hot_score", "created_at"))


def select_post_rows(*conditions: ColumnElement[bool]) -> Select:
    """SELECT LIST_COLUMNS of the posts matching `conditions` (add order and limit)."""
    return (select(*LIST_COLUMNS).select_from(
        _POSTS.outerjoin(_USERS, _USERS.c.id == _POSTS.c.author_id)
        .outerjoin(_BOARDS, _BOARDS.c.id == _POSTS.c.board_id)).where(*conditions))


async def render_post_rows(session: Executor, rows: list[Any]) -> list[dict[str, Any]]:
    """Rows of select_post_rows as the API shows posts (the same shape as render_posts)."""
    if not rows:
        return []
    topics = await _topics_of(session, [r[0] for r in rows])
    return [_row_view(r, topics.get(r[0], [])) for r in rows]


def _list(value: Any) -> Any:
    """A JSON list column's value as shown: a copy of a decoded list, or Prepared's raw text."""
    if value is None:
        return []
    return value if isinstance(value, codec.Raw) else list(value)


def _row_view(row: Any, topic_names: list[str],
              reveal_author: bool = False) -> dict[str, Any]:
    (post_id, author_id, text, media_kind, media_ids, pet_types, pet_ids, location_name,
     visibility, status, status_reason, pinned_at, is_anonymous, like_count, comment_count,
     favorite_count, share_count, view_count, _hot, created_at, edited_at, nickname,
     avatar_url, board_slug) = row  # unpacking: a Row's attribute lookups cost more
    hide = bool(is_anonymous) and not reveal_author
    return {
        "id": post_id,
        # An anonymous post names nobody (not even its pet cards, which lead to the owner).
        "author": dict(ANONYMOUS_AUTHOR) if hide else
        {"id": author_id, "nickname": nickname or "", "avatar_url": avatar_url or ""},
        "anonymous": bool(is_anonymous),
        "text": text, "media_kind": media_kind, "media_ids": _list(media_ids),
        "topics": topic_names, "board": board_slug,
        "pet_types": _list(pet_types), "pet_ids": [] if hide else _list(pet_ids),
        "location_name": location_name, "visibility": visibility, "status": status,
        "status_reason": status_reason if status != "visible" else "",
        "pinned": pinned_at is not None,
        "like_count": like_count, "comment_count": comment_count,
        "favorite_count": favorite_count, "share_count": share_count, "view_count": view_count,
        "created_at": created_at, "edited_at": edited_at,
    }


def post_view(post: Post, author: User | None, board: Board | None,
              topic_names: list[str], reveal_author: bool = False) -> dict[str, Any]:
    row = (*(getattr(post, name) for name in _POST_FIELDS),
           author.nickname if author else "", author.avatar_url if author else "",
           board.slug if board else None)
    return _row_view(row, topic_names, reveal_author)


def author_view(post: Post, author: User | None,
                reveal_author: bool = False) -> dict[str, Any]:
    """The `author` of a post as every surface shows it (lists, search, share cards): the
    anonymous placeholder for an anonymous post unless revealed (admins)."""
    if post.is_anonymous and not reveal_author:
        return dict(ANONYMOUS_AUTHOR)
    return {"id": post.author_id, "nickname": author.nickname if author else "",
            "avatar_url": author.avatar_url if author else ""}
