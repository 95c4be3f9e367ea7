"""Adoption: the pet of a finished generation becomes the user's virtual pet.

POST /v1/virtual-pets {generation_id, name}: the caller's generation, done and not expired
(anyone else's is 404; an adopted one 409, once), a name of 1-16 characters without
prohibited words, and at most VPET_PETS_PER_USER pets. The pet starts with care's initial
statuses for its personality. Two adoptions at once make one pet: the generation row is
locked, and `virtual_pets.generation_id` is unique besides. docs/virtual-pet.md ("Adoption").
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.users import User
from models.virtual_pets import PetGeneration, VirtualPet
from pawhome.platform.errors import (
    GenerationAdopted,
    GenerationNotAdoptable,
    NotFound,
    PetLimitReached,
)
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from pawhome.virtualpet import care, hunger, leaderboards, pets
from pawhome.virtualpet.generation import MAX_ID
from settings import get_settings


class AdoptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation_id: int = Field(ge=1, le=MAX_ID)
    name: str = Field(min_length=1, max_length=16, pattern=NOT_BLANK)


async def adopt(resources: Resources, user_id: int, body: AdoptBody) -> dict[str, Any]:
    """Make the generation's pet the caller's (201 with the pet as its owner sees it)."""
    name = body.name.strip()
    screen_text(name, "name")
    now = utcnow()
    try:
        async with resources.db.session() as session, session.begin():
            # The user's row first (as generations do): their pet count cannot be raced past.
            await session.execute(select(User.id).where(User.id == user_id).with_for_update())
            gen = (await session.execute(select(PetGeneration).where(
                PetGeneration.id == body.generation_id).with_for_update())).scalar_one_or_none()
            if gen is None or gen.user_id != user_id:
                raise NotFound("No such generation of yours")
            if gen.status == "adopted":
                raise GenerationAdopted()
            if gen.status != "done" or gen.expires_at <= now:
                why = {"queued": "it is still queued", "running": "it is still running",
                       "failed": f"it failed: {gen.error}"}.get(gen.status, "it has expired")
                raise GenerationNotAdoptable(f"This generation cannot be adopted: {why}")
            owned = (await session.execute(select(func.count(VirtualPet.id)).where(
                VirtualPet.owner_id == user_id, VirtualPet.deleted_at.is_(None)))).scalar_one()
            if owned >= resources.settings.vpet_pets_per_user:
                raise PetLimitReached(f"You have {owned} virtual pets, the most allowed")
            pet = await adopt_generation(session, gen, name, now)
            view = pets.pet_view(
                pet, now, owner=True, settings=resources.settings,
                images=await pets.image_urls(session, resources.settings, [pet]),
                owner_nickname=await pets.nickname_of(session, user_id))
    except IntegrityError as error:  # the unique generation_id: adopted meanwhile
        raise GenerationAdopted() from error
    await pets.forget(resources.cache, [view["id"]])  # a "not found" read before it existed
    return view


async def adopt_generation(session: AsyncSession, gen: PetGeneration, name: str,
                           now: dt.datetime) -> VirtualPet:
    """The generation's pet, its owner's now: the pet row, the generation `adopted`. The
    checks are the caller's. Caller commits."""
    params = dict(gen.params or {})
    pet = VirtualPet(owner_id=gen.user_id, generation_id=gen.id, name=name,
                     species=str(params.get("species") or "other")[:16], params=params,
                     personality=gen.personality or "calm",
                     sprite_media_id=gen.sprite_media_id, thumb_media_id=gen.thumb_media_id,
                     **care.initial_statuses(gen.personality or "calm"), status_at=now,
                     level=1, exp=0, exp_reached_at=now, skills=[], cooldowns={},
                     created_at=now, updated_at=now)
    hunger.schedule(pet, now, get_settings())  # the first "pet hungry" moment
    session.add(pet)
    gen.status = "adopted"
    await session.flush()
    await leaderboards.pet_progressed(session, pet)  # on the pet board, through the outbox
    return pet

