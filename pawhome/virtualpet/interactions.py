"""Interactions with a virtual pet — feeding, petting, playing, cleaning, training — and
their history. docs/virtual-pet.md ("Interactions").

One interaction is one transaction: lock the pet row, compute its statuses for now
(care.py), refuse a cooldown (409 with retry_after), a pet that cannot take it (400) or a
wrong or missing item (422), apply the effect, use the item (food is consumed through the
inventory, keyed by the interaction, a toy only has to be held), write the log row with
every status before and after, store the statuses with `status_at = now`, the experience,
level, skills, cooldowns and the next hungry reminder. A level-up sends `pet.level_up` to
the owner's sockets through the outbox and a `system` notification. The row lock makes two
interactions on one pet run one after the other: each sees the other's result, so none is
lost, and a cooldown lets exactly one of a burst through.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.points import InventoryItem
from models.virtual_pets import PetInteraction, VirtualPet
from pawhome.messaging import notifications
from pawhome.platform import events
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    InsufficientInventory,
    InteractionCoolingDown,
    NotFound,
    field_error,
)
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.points import inventory
from pawhome.virtualpet import care, hunger, leaderboards, pets

InteractionType = Literal["feeding", "petting", "playing", "cleaning", "training"]


class InteractionBody(BaseModel):
    """POST /v1/virtual-pets/{id}/interactions."""
    model_config = ConfigDict(extra="forbid")
    type: InteractionType
    item_id: int | None = Field(None, ge=1, le=2**63 - 1,
                                description="the SKU id of an inventory item the caller holds: "
                                            "food for feeding, a toy for playing")


class InteractionsQuery(PageQuery):
    type: InteractionType | None = None


class LevelUpEvent(BaseModel):
    """`pet.level_up`: one of the user's pets reached a new level."""
    model_config = ConfigDict(extra="forbid")
    pet_id: int
    name: str
    level: int
    previous_level: int
    exp: int
    skill_unlocked: str | None


events.register_event_schema("pet.level_up", LevelUpEvent)


def interaction_view(row: PetInteraction) -> dict[str, Any]:
    return {"id": row.id, "pet_id": row.pet_id, "type": row.type,
            "item_sku_id": row.item_sku_id,
            "changes": {s: [round(a / 1000, 1), round(b / 1000, 1)]
                        for s, (a, b) in (row.changes or {}).items()},
            "exp_gained": row.exp_gained, "level_after": row.level_after,
            "skill_unlocked": row.skill_unlocked or None,
            "created_at": row.created_at.isoformat() + "Z"}


async def _held_item(session: AsyncSession, user_id: int,
                     item_id: int | None) -> InventoryItem | None:
    """The item the interaction uses, its row locked (it may be consumed), or None."""
    if item_id is None:
        return None
    item = await inventory.locked_item(session, user_id, item_id)
    if item is None or item.quantity <= 0:
        raise InsufficientInventory(errors=[field_error("item_id", "not in your inventory")])
    return item


async def _trainings(session: AsyncSession, pet_id: int) -> int:
    return int((await session.execute(select(func.count(PetInteraction.id)).where(
        PetInteraction.pet_id == pet_id, PetInteraction.type == "training"))).scalar_one())


def _refuse_cooldown(kind: str, left: int) -> None:
    if left > 0:
        raise InteractionCoolingDown(f"{kind} again in {left} s",
                                     headers={"Retry-After": str(left)},
                                     data={"type": kind, "retry_after": left})


async def _announce_level_up(session: AsyncSession, pet: VirtualPet, previous: int,
                             skill: str | None) -> None:
    """The owner's live event and notification (the notification last: it locks the
    recipient's settings row until the commit)."""
    events.emit_to_user(session, pet.owner_id, "pet.level_up", {
        "pet_id": pet.id, "name": pet.name, "level": pet.level, "previous_level": previous,
        "exp": pet.exp, "skill_unlocked": skill})
    await notifications.notify(
        session, pet.owner_id, "system", "pet_level_up", target_type="virtual_pet",
        target_id=pet.id, payload={"title": "宠物升级啦", "pet_id": pet.id, "level": pet.level,
                                   "text": f"{pet.name} 升到了 {pet.level} 级"})


async def interact(resources: Resources, user_id: int, pet_id: int,
                   body: InteractionBody) -> dict[str, Any]:
    """POST /v1/virtual-pets/{id}/interactions: the owner interacts with the pet; the reply
    is the pet as its owner sees it now and the interaction with its changes."""
    rules = care.rules_from(resources.settings)
    kind = body.type

    async def work(session: AsyncSession) -> dict[str, Any]:
        pet = await pets.live_pet(session, pet_id, lock=True)
        if pet is None or pet.owner_id != user_id:
            raise NotFound("Virtual pet not found")
        now = utcnow()
        _refuse_cooldown(kind, care.cooldown_left(kind, pet.cooldowns or {}, now, rules))
        item = await _held_item(session, user_id, body.item_id)
        before = care.current({s: getattr(pet, s) for s in care.STATUSES}, pet.status_at, now,
                              pet.personality, rules)
        care.check(kind, before, item.kind if item is not None else None)
        after = care.apply(kind, before)
        effect = care.EFFECTS[kind]
        previous_level = pet.level
        exp = pet.exp + effect.exp
        level = care.level_for(exp)
        skill = None
        if kind == "training":
            skill = care.skill_unlocked(await _trainings(session, pet.id) + 1, level,
                                        list(pet.skills or []))
        row = PetInteraction(pet_id=pet.id, user_id=user_id, type=kind,
                             item_sku_id=body.item_id,
                             changes={s: [before[s], after[s]] for s in care.STATUSES
                                      if before[s] != after[s]},
                             exp_gained=effect.exp, level_after=level,
                             skill_unlocked=skill or "", created_at=now)
        session.add(row)
        await session.flush()
        if effect.consumes_item and item is not None:
            await inventory.consume(session, user_id, item.sku_id, 1,
                                    key=f"vpet_interaction:{row.id}", reason="virtual_pet",
                                    ref_type="virtual_pet", ref_id=pet.id, locked=item)
        for status in care.STATUSES:
            setattr(pet, status, after[status])
        pet.status_at = now
        if effect.exp:
            pet.exp, pet.exp_reached_at = exp, now
            await leaderboards.pet_progressed(session, pet)  # through the outbox
        pet.level = level
        if skill:
            pet.skills = [*(pet.skills or []), skill]
        pet.cooldowns = {**(pet.cooldowns or {}), kind: now.isoformat()}
        pet.last_interaction_at = now
        pet.hungry_remind_at = hunger.next_reminder(pet, now, rules)
        await session.flush()
        if level > previous_level:
            await _announce_level_up(session, pet, previous_level, skill)
        view = pets.pet_view(pet, now, owner=True,
                             images=await pets.image_urls(session, resources.settings, [pet]),
                             owner_nickname=await pets.nickname_of(session, user_id),
                             settings=resources.settings)
        return {"pet": view, "interaction": {**interaction_view(row),
                                             "leveled_up": level > previous_level}}

    # The pet row lock orders interactions; a deadlock (the item's or the recipient's lock
    # taken in another order by some other writer) reruns the whole interaction.
    result = await run_transaction(resources.db, work)
    await pets.forget(resources.cache, [pet_id])
    return result


async def history(resources: Resources, user_id: int, pet_id: int,
                  query: InteractionsQuery) -> dict[str, Any]:
    """GET /v1/virtual-pets/{id}/interactions: the pet's interactions, newest first (owner
    only; others 404)."""
    async with resources.db.session() as session:
        pet = await pets.live_pet(session, pet_id)
        if pet is None or pet.owner_id != user_id:
            raise NotFound("Virtual pet not found")
        conditions = [PetInteraction.pet_id == pet_id]
        if query.type is not None:
            conditions.append(PetInteraction.type == query.type)
        total = int((await session.execute(select(func.count(PetInteraction.id))
                                           .where(*conditions))).scalar_one())
        rows = list((await session.execute(
            select(PetInteraction).where(*conditions).order_by(PetInteraction.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
    return page_result([interaction_view(r) for r in rows], total, query)
