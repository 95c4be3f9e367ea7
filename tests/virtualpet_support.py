"""Shared set-up of the virtual pet care tests: an adopted pet written directly (adoption is
the generation module's; these tests do not depend on it), a pet's row read afresh, and a
food or toy in the owner's inventory through the inventory's own grant."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from models.base import utcnow
from models.virtual_pets import VirtualPet
from pawhome.points import inventory
from pawhome.virtualpet import care

_next_generation = int(uuid.uuid4().int % 10**12) * 1000


async def make_pet(resources: Any, owner_id: int, *, personality: str = "calm",
                   hours_ago: float = 0, **fields: Any) -> int:
    """An adopted pet of `owner_id` whose stored statuses are `hours_ago` old; returns its id."""
    global _next_generation
    _next_generation += 1
    status_at = utcnow() - dt.timedelta(hours=hours_ago)
    values: dict[str, Any] = {
        "owner_id": owner_id, "generation_id": _next_generation, "name": "团子",
        "species": "cat", "params": {"colours": ["#f0c080"]}, "personality": personality,
        **care.initial_statuses(personality), "status_at": status_at, "level": 1, "exp": 0,
        "exp_reached_at": status_at, "skills": [], "cooldowns": {}}
    values.update(fields)
    async with resources.db.session() as session, session.begin():
        pet = VirtualPet(**values)
        session.add(pet)
        await session.flush()
        return pet.id


async def pet_row(resources: Any, pet_id: int) -> VirtualPet:
    async with resources.db.session() as session:
        pet = await session.get(VirtualPet, pet_id)
        assert pet is not None
        return pet


async def give_item(resources: Any, user_id: int, kind: str, quantity: int = 1,
                    sku_id: int | None = None) -> int:
    """`quantity` of a virtual item of `kind` in the user's inventory; returns its SKU id
    (a fresh one unless given)."""
    sku_id = sku_id or int(uuid.uuid4().int % 10**12)
    async with resources.db.session() as session, session.begin():
        await inventory.grant(session, user_id,
                              inventory.Goods(sku_id, sku_id, kind, f"test {kind}"),
                              quantity, key="test:" + uuid.uuid4().hex, reason="test")
    return sku_id
