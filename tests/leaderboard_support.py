"""Shared set-up of the leaderboard tests and benchmark: adopted pets written directly (as
adoption would leave them), and a board's ranks read straight from Redis."""
from __future__ import annotations

import datetime as dt
import itertools
import random
from typing import Any

from models.base import utcnow
from models.virtual_pets import VirtualPet

_generations = itertools.count(random.randrange(10**12, 2 * 10**12) * 1000)


def pet_row(owner_id: int, *, level: int = 1, exp: int = 0,
            reached: dt.datetime | None = None, name: str = "团子") -> VirtualPet:
    now = utcnow()
    return VirtualPet(owner_id=owner_id, generation_id=next(_generations), name=name,
                      species="cat", params={}, personality="calm", mood=80_000,
                      fullness=80_000, cleanliness=80_000, affection=20_000, status_at=now,
                      level=level, exp=exp, exp_reached_at=reached or now, skills=[],
                      cooldowns={})


async def make_pet(resources: Any, owner_id: int, **kw: Any) -> VirtualPet:
    async with resources.db.session() as session, session.begin():
        pet = pet_row(owner_id, **kw)
        session.add(pet)
    return pet


async def ranks(resources: Any, key: str, user_ids: list[int]) -> list[int | None]:
    """Each user's 0-based rank on the board at `key` (None: not on it)."""
    async with resources.cache.redis.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.zrevrank(key, str(user_id))
        return list(await pipe.execute())
