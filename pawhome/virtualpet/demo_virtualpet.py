"""Demo virtual-pet data for `make run`: the demo cat photo (pawhome/virtualpet/data/
demo_cat.jpg, CC0) as a ready image of each demo buyer, to generate a pet from
(POST /v1/virtual-pets/generations with its media id), and for the second demo buyer a pet
already generated from it by the baseline generator and adopted, "Mochi". Idempotent:
nothing is added once a demo pet exists. docs/virtual-pet.md.
"""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.virtual_pets import PetGeneration, VirtualPet
from pawhome.media.uploads import record_generated_image, store_generated_file
from pawhome.virtualpet import adoption, generation
from pawhome.virtualpet.generation_providers import BaselineGenerator
from settings import get_settings

DEMO_PHOTO = Path(__file__).resolve().parent / "data" / "demo_cat.jpg"
DEMO_PET_NAME = "Mochi"


async def _photo(session: AsyncSession, owner_id: int) -> int:
    """The demo photo as a ready image of the owner's; its media id."""
    settings = get_settings()
    key = await asyncio.to_thread(store_generated_file, settings, DEMO_PHOTO, "image/jpeg",
                                  "photo")
    media = await record_generated_image(session, owner_id, key, "image/jpeg", 451, 300,
                                         DEMO_PHOTO.stat().st_size)
    return media.id


async def _quiet(stage: str) -> None:
    """No one is watching the demo's own generation."""


async def seed_demo_virtual_pets(session: AsyncSession, buyer_ids: list[int]) -> int:
    """Rows created (0 when a demo pet exists already)."""
    if (await session.execute(select(VirtualPet.id).where(
            VirtualPet.name == DEMO_PET_NAME, VirtualPet.owner_id == buyer_ids[-1]))).first():
        return 0
    settings = get_settings()
    photos = [await _photo(session, buyer) for buyer in buyer_ids]
    owner = buyer_ids[-1]
    hints = {"species": "cat"}
    pet = await BaselineGenerator(settings).generate(DEMO_PHOTO, hints, _quiet)
    with tempfile.TemporaryDirectory(prefix="pawhome-demo-") as tmp:
        stored = await generation.store_images(settings, Path(tmp), pet)
    now = utcnow()
    gen = PetGeneration(user_id=owner, media_id=photos[-1], hints=hints, status="running",
                        stage="storing", created_at=now, expires_at=now)
    session.add(gen)
    await session.flush()
    await generation.record_result(session, settings, gen, pet, stored)
    await adoption.adopt_generation(session, gen, DEMO_PET_NAME, utcnow())
    return len(photos) + 4  # the photos, the sprite and thumbnail, the generation, the pet
