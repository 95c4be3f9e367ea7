"""Seed demo data for the embedded mode: `python -m pawhome.demo` (idempotent)."""
from __future__ import annotations

import asyncio

from sqlalchemy import select

from models.users import User
from pawhome import users
from pawhome.resources import Resources
from settings import get_settings

DEMO_USERS = [("demo-user-1", "豆豆妈 🐶", "user"), ("demo-user-2", "Mochi's human", "user"),
              ("demo-merchant", "萌宠小铺", "merchant"), ("demo-admin", "Admin", "admin")]


async def seed() -> None:
    resources = Resources(get_settings())
    try:
        async with resources.db.session() as session, session.begin():
            for openid, nickname, role in DEMO_USERS:
                user, is_new = await users.get_or_create_by_openid(session, openid)
                if is_new:
                    user.nickname, user.role = nickname, role
            count = len((await session.execute(select(User.id))).all())
        print(f"demo data ready ({count} users)")
    finally:
        await resources.close()


if __name__ == "__main__":
    asyncio.run(seed())
