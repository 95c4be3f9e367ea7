"""Shared helpers of the leaderboard tests: a board's ranks read straight from Redis (pets
are written with tests/virtualpet_support.py)."""
from __future__ import annotations

from typing import Any


async def ranks(resources: Any, key: str, user_ids: list[int]) -> list[int | None]:
    """Each user's 0-based rank on the board at `key` (None: not on it)."""
    async with resources.cache.redis.pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.zrevrank(key, str(user_id))
        return list(await pipe.execute())
