"""Per-user queueing of mall writes: a unit of work that must not interleave with another of
the same user's (the one default address, the address and cart-line limits, a cart line's
quantity cap) locks the user's row first.

The lock is `SELECT ... FOR UPDATE` on `users`: every such write of one user then runs after
the previous one committed, and, in a READ COMMITTED session, reads what it committed.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.users import User
from pawhome.platform.errors import NotFound


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Take the user's row lock for the rest of this unit of work; call it first, in a
    READ COMMITTED session (resources.db.session(read_committed=True)). Caller commits."""
    found = (await session.execute(select(User.id).where(User.id == user_id)
                                   .with_for_update())).scalar_one_or_none()
    if found is None:
        raise NotFound("No such user")
