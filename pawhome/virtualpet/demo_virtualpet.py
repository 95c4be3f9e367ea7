"""Demo virtual-pet data for `make run`: the two cat photos of pawhome/virtualpet/data/
(README there) as ready images of each demo buyer, to generate a pet from
(POST /v1/virtual-pets/generations with a media id): the ginger kitten facing the camera
(found by its face) and Chelsea's close-up (found by saliency). For the second demo buyer a
pet already generated from Chelsea by the baseline generator and adopted, "Mochi".
Idempotent: nothing is added once a demo pet exists. docs/virtual-pet.md.
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

DATA = Path(__file__).resolve().parent / "data"
DEMO_PHOTO = DATA / "demo_cat.jpg"  # 451×300
KITTEN_PHOTO = DATA / "kitten.jpg"  # 1280×720
DEMO_PET_NAME = "Mochi"


async def _photo(session: AsyncSession, owner_id: int, photo: Path, width: int,
                 height: int) -> int:
    """A demo photo as a ready image of the owner's; its media id."""
    settings = get_settings()
    key = await asyncio.to_thread(store_generated_file, settings, photo, "image/jpeg", "photo")
    size = (await asyncio.to_thread(photo.stat)).st_size
    media = await record_generated_image(session, owner_id, key, "image/jpeg", width, height,
                                         size)
    return media.id


async def _quiet(stage: str) -> None:
    """No one is watching the demo's own generation."""


async def seed_demo_virtual_pets(session: AsyncSession, buyer_ids: list[int]) -> int:
    """Rows created (0 when a demo pet exists already)."""
    if (await session.execute(select(VirtualPet.id).where(
            VirtualPet.name == DEMO_PET_NAME, VirtualPet.owner_id == buyer_ids[-1]))).first():
        return 0
    settings = get_settings()
    for buyer in buyer_ids:
        await _photo(session, buyer, KITTEN_PHOTO, 1280, 720)
    photos = [await _photo(session, buyer, DEMO_PHOTO, 451, 300) for buyer in buyer_ids]
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
    return 2 * len(photos) + 4  # the photos, the sprite and thumbnail, the generation, the pet
