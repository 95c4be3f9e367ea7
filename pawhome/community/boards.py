"""The community boards (求助, 晒宠, 领养, 经验): the one module that writes `boards`.

Boards are data, not schema: the standard ones are created idempotently when missing (by the
demo seeder, or on first use by a fresh database), so posts and feeds can name a board by its
slug. docs/community.md.
"""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Insert, select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Board
from pawhome.platform.resources import Resources

# slug, name, description, sort, allow_anonymous (owners may ask for help without signing)
BOARDS = [
    ("help", "求助", "Questions about health, food and behaviour", 10, True),
    ("show", "晒宠", "Show off your pets", 20, False),
    ("adopt", "领养", "Pets looking for a home", 30, False),
    ("experience", "经验", "Experience and guides from other owners", 40, False),
]
STANDARD_SLUGS = {slug for slug, *_ in BOARDS}


async def ensure_boards(session: AsyncSession) -> int:
    """Create the standard boards that are missing; returns how many were created. Safe to
    run concurrently (INSERT IGNORE / ON CONFLICT DO NOTHING on the unique slug). Caller
    commits."""
    existing = set((await session.execute(select(Board.slug))).scalars())
    created = 0
    is_sqlite = session.get_bind().dialect.name == "sqlite"
    for slug, name, description, sort, allow_anonymous in BOARDS:
        if slug in existing:
            continue
        values = {"slug": slug, "name": name, "description": description, "sort": sort,
                  "allow_anonymous": allow_anonymous, "created_at": utcnow()}
        statement: Insert
        if is_sqlite:
            statement = sqlite.insert(Board).values(**values).on_conflict_do_nothing()
        else:
            statement = mysql.insert(Board).values(**values).prefix_with("IGNORE")
        result = cast(CursorResult[Any], await session.execute(statement))
        created += result.rowcount
    return created


async def seed_boards(session: AsyncSession) -> int:
    """Demo seeder (pawhome/demo.py SEEDERS): the standard boards."""
    return await ensure_boards(session)


async def list_boards(resources: Resources) -> list[dict[str, Any]]:
    """Every board, in display order (the standard ones are created on a fresh database)."""
    async with resources.db.session() as session, session.begin():
        query = select(Board).order_by(Board.sort, Board.id)
        rows = list((await session.execute(query)).scalars())
        if not rows:  # a fresh database that was never seeded
            await ensure_boards(session)
            rows = list((await session.execute(query)).scalars())
        return [{"slug": b.slug, "name": b.name, "description": b.description,
                 "allow_anonymous": b.allow_anonymous} for b in rows]


async def board_by_slug(session: AsyncSession, slug: str) -> Board | None:
    """The board with this slug; a standard board missing from an unseeded database is
    created on first use."""
    query = select(Board).where(Board.slug == slug)
    board = (await session.execute(query)).scalar_one_or_none()
    if board is None and slug in STANDARD_SLUGS:
        await ensure_boards(session)
        board = (await session.execute(query)).scalar_one_or_none()
    return board
