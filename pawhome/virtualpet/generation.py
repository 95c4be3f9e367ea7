"""Generations: a virtual pet made from a photo of the user's real pet.

POST /v1/virtual-pets/generations checks the photo (the caller's ready image upload) and the
daily limit, writes the generation and queues `ai.generate_pet` through the outbox in the same
transaction (202). The task (`run_generation`, on the `ai` queue) downloads the photo from the
media storage and runs the generator (the baseline image analysis, or an external provider
that falls back to it; generation_providers.py), telling the user each stage live
(`generation.progress`), then stores the sprite and thumbnail as the user's media and ends in
`generation.done` or `generation.failed` with the reason. A result is kept
VPET_GENERATION_KEEP_HOURS for adoption (pawhome/virtualpet/adoption.py), then a beat job
marks it expired. docs/virtual-pet.md ("Generation").
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.media import Media
from models.users import User
from models.virtual_pets import PetGeneration
from pawhome.integrations.storage import StorageError, storage_for
from pawhome.mall.product_rendering import media_by_id
from pawhome.media.uploads import file_url, max_bytes, record_generated_image, store_generated_file
from pawhome.platform import codec, events
from pawhome.platform.errors import GenerationLimitReached, NotFound, PhotoNotUsable, field_error
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources
from pawhome.points.ledger import day_start
from pawhome.virtualpet.generation_baseline import encode_webp
from pawhome.virtualpet.generation_providers import GeneratedPet, PhotoRejected, generator_for
from settings import Settings

log = logging.getLogger("pawhome.virtualpet.generation")

MAX_ID = 2**63 - 1
# The stages a generation reports, in order, with the share of the work done when each starts.
STAGES: dict[str, int] = {"queued": 0, "downloading": 5, "detecting": 20, "measuring": 45,
                          "parameters": 60, "rendering": 70, "storing": 90, "done": 100}
TASK = "ai.generate_pet"


# -- request bodies and event schemas ------------------------------------------------------------


class GenerationHints(BaseModel):
    model_config = ConfigDict(extra="forbid")
    species: Literal["cat", "dog", "other"] | None = Field(
        None, description="what the pet is; without it a cat face found makes a cat")
    breed: str | None = Field(None, max_length=32, pattern=NOT_BLANK)
    name_ideas: list[str] = Field(default_factory=list, max_length=5,
                                  description="names the user has in mind (kept with it)")


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: int = Field(ge=1, le=MAX_ID, description="the caller's ready image upload")
    hints: GenerationHints = Field(default_factory=GenerationHints)


class GenerationProgressEvent(BaseModel):
    generation_id: int
    stage: str
    percent: int


class GenerationDoneEvent(BaseModel):
    generation_id: int
    params: dict[str, Any]
    personality: str
    sprite_url: str
    thumb_url: str
    expires_at: dt.datetime


class GenerationFailedEvent(BaseModel):
    generation_id: int
    reason: str


events.register_event_schema("generation.progress", GenerationProgressEvent)
events.register_event_schema("generation.done", GenerationDoneEvent)
events.register_event_schema("generation.failed", GenerationFailedEvent)


# -- views -----------------------------------------------------------------------------------


def generation_urls(settings: Settings, media: dict[int, Media],
                    gen: PetGeneration) -> tuple[str, str]:
    """(sprite URL, thumbnail URL) of a generation, "" for what it does not have."""
    sprite, thumb = media.get(gen.sprite_media_id or 0), media.get(gen.thumb_media_id or 0)
    return (file_url(settings, sprite.storage_key) if sprite else "",
            file_url(settings, thumb.storage_key) if thumb else "")


def generation_view(settings: Settings, gen: PetGeneration,
                    media: dict[int, Media]) -> dict[str, Any]:
    sprite_url, thumb_url = generation_urls(settings, media, gen)
    return {"id": gen.id, "status": gen.status, "stage": gen.stage,
            "percent": 100 if gen.status in ("done", "adopted", "expired") else
            STAGES.get(gen.stage, 0),
            "media_id": gen.media_id, "hints": gen.hints or {}, "provider": gen.provider or None,
            "params": gen.params, "personality": gen.personality or None,
            "sprite_url": sprite_url or None, "thumb_url": thumb_url or None,
            "reason": gen.error or None, "elapsed_ms": gen.elapsed_ms,
            "created_at": gen.created_at, "finished_at": gen.finished_at,
            "expires_at": gen.expires_at}


# -- asking for one ----------------------------------------------------------------------------


async def _usable_photo(session: AsyncSession, user_id: int, media_id: int) -> Media:
    media = await session.get(Media, media_id)
    if media is None or media.owner_id != user_id:
        raise NotFound("No such media of yours")
    problem = ""
    if media.kind != "image":
        problem = f"is a {media.kind}, not an image"
    elif media.status == "failed":
        problem = f"failed: {media.fail_reason}"
    elif media.status != "ready":
        problem = f"is not ready yet ({media.status})"
    elif media.moderation == "risky":
        problem = "was rejected by moderation"
    if problem:
        raise PhotoNotUsable(f"media_id {problem}", errors=[field_error("media_id", problem)])
    return media


async def request_generation(resources: Resources, user_id: int,
                             body: GenerationBody) -> dict[str, Any]:
    """Queue a generation from one of the caller's ready images (202). 404 for a media that
    is not theirs, 422 for one that is not a ready image, 429 past the daily limit."""
    settings = resources.settings
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        # The user's row serialises their generations: two at once cannot both pass the limit.
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
        await _usable_photo(session, user_id, body.media_id)
        today = day_start(now)
        made = (await session.execute(
            select(func.count(PetGeneration.id)).where(PetGeneration.user_id == user_id,
                                                       PetGeneration.created_at >= today)
        )).scalar_one()
        if made >= settings.vpet_generations_per_day:
            retry = int((today + dt.timedelta(days=1) - now).total_seconds()) + 1
            raise GenerationLimitReached(
                f"You have generated {made} pets today, the most a day "
                f"({settings.vpet_generations_per_day}); try again tomorrow",
                headers={"Retry-After": str(retry)})
        gen = PetGeneration(user_id=user_id, media_id=body.media_id,
                            hints=body.hints.model_dump(exclude_none=True), status="queued",
                            stage="queued", created_at=now,
                            expires_at=now + dt.timedelta(
                                hours=settings.vpet_generation_keep_hours))
        session.add(gen)
        await session.flush()
        enqueue_task(session, TASK, gen.id)
        return generation_view(settings, gen, {})


async def get_generation(resources: Resources, user_id: int, generation_id: int) -> dict[str, Any]:
    """The caller's generation (anyone else's is 404)."""
    async with resources.db.session() as session:
        gen = await session.get(PetGeneration, generation_id)
        if gen is None or gen.user_id != user_id:
            raise NotFound("No such generation of yours")
        media = await media_by_id(session, [gen.sprite_media_id, gen.thumb_media_id])
        return generation_view(resources.settings, gen, media)


# -- the task's work ---------------------------------------------------------------------------


class _Reporter:
    """Tells the user each stage as it starts (stored in their stream and delivered now) and
    notes it on the row, so GET shows it too."""

    def __init__(self, resources: Resources, user_id: int, generation_id: int) -> None:
        self.resources, self.user_id, self.generation_id = resources, user_id, generation_id

    async def __call__(self, stage: str) -> None:
        async with self.resources.db.session() as session, session.begin():
            await session.execute(update(PetGeneration).where(
                PetGeneration.id == self.generation_id, PetGeneration.status == "running")
                .values(stage=stage))
        await events.publish_to_user(self.resources.cache, self.user_id, "generation.progress",
                                     {"generation_id": self.generation_id, "stage": stage,
                                      "percent": STAGES[stage]})


async def _start(resources: Resources, generation_id: int) -> tuple[int, dict[str, Any], str] | str:
    """Claim the generation for this run: (user, hints, the photo's storage key) or, for one
    that is already finished or gone, its status (a redelivered task does nothing)."""
    async with resources.db.session() as session, session.begin():
        gen = (await session.execute(select(PetGeneration).where(
            PetGeneration.id == generation_id).with_for_update())).scalar_one_or_none()
        if gen is None:
            return "missing"
        if gen.status not in ("queued", "running"):
            return gen.status
        gen.status, gen.stage = "running", "queued"
        media = await session.get(Media, gen.media_id)
        return gen.user_id, dict(gen.hints or {}), media.storage_key if media else ""


async def run_generation(resources: Resources, generation_id: int) -> str:
    """The `ai` task's work: make the pet or fail with the reason. Idempotent: a finished
    generation is left alone; a rerun after a crash starts again. Returns the final status.
    Storage outages raise StorageError (the task retries, then `fail_generation`)."""
    started = await _start(resources, generation_id)
    if isinstance(started, str):
        return started
    user_id, hints, key = started
    report = _Reporter(resources, user_id, generation_id)
    settings = resources.settings
    store = storage_for(settings)
    with tempfile.TemporaryDirectory(prefix="pawhome-vpet-") as tmp:
        workdir = Path(tmp)
        await report("downloading")
        info = await asyncio.to_thread(store.head, key) if key else None
        if info is None:
            return await fail_generation(resources, generation_id, "the photo is gone")
        limit = max_bytes(settings, "image")
        if info.size > limit:
            return await fail_generation(resources, generation_id,
                                         f"the photo is {info.size} bytes, over the {limit} "
                                         "byte limit")
        photo = workdir / "photo"
        await asyncio.to_thread(store.download, key, photo)
        try:
            pet = await generator_for(resources).generate(photo, hints, report)
        except PhotoRejected as rejected:
            return await fail_generation(resources, generation_id, str(rejected))
        await report("storing")
        stored = await store_images(settings, workdir, pet)
    return await _finish(resources, generation_id, pet, stored)


async def store_images(settings: Settings, workdir: Path,
                        pet: GeneratedPet) -> list[tuple[str, int, int, int]]:
    """Put the sprite and the thumbnail into the media storage as WebP (transparent
    background): [(key, width, height, size)]."""
    out = []
    for name, image in (("sprite", pet.sprite), ("thumb", pet.thumb)):
        data = await asyncio.to_thread(encode_webp, image)
        path = workdir / f"{name}.webp"
        path.write_bytes(data)
        key = await asyncio.to_thread(store_generated_file, settings, path, "image/webp", name)
        out.append((key, int(image.shape[1]), int(image.shape[0]), len(data)))
    return out


async def _finish(resources: Resources, generation_id: int, pet: GeneratedPet,
                  stored: list[tuple[str, int, int, int]]) -> str:
    async with resources.db.session() as session, session.begin():
        gen = (await session.execute(select(PetGeneration).where(
            PetGeneration.id == generation_id).with_for_update())).scalar_one_or_none()
        if gen is None or gen.status != "running":
            return gen.status if gen is not None else "missing"
        await record_result(session, resources.settings, gen, pet, stored)
        return "done"


async def record_result(session: AsyncSession, settings: Settings, gen: PetGeneration,
                        pet: GeneratedPet, stored: list[tuple[str, int, int, int]]) -> None:
    """Mark the generation done with the pet and its stored images, and tell the user
    (`generation.done`). Caller commits."""
    images = [await record_generated_image(session, gen.user_id, key, "image/webp", width,
                                           height, size)
              for key, width, height, size in stored]
    now = utcnow()
    gen.status, gen.stage, gen.error = "done", "done", ""
    gen.params, gen.personality, gen.provider = pet.params, pet.personality, pet.provider
    gen.sprite_media_id, gen.thumb_media_id = images[0].id, images[1].id
    gen.finished_at = now
    gen.elapsed_ms = int((now - gen.created_at).total_seconds() * 1000)
    gen.expires_at = now + dt.timedelta(hours=settings.vpet_generation_keep_hours)
    sprite_url, thumb_url = generation_urls(settings, {m.id: m for m in images}, gen)
    events.emit_to_user(session, gen.user_id, "generation.done",
                        {"generation_id": gen.id, "params": gen.params,
                         "personality": gen.personality, "sprite_url": sprite_url,
                         "thumb_url": thumb_url,
                         # as the REST replies write it (the outbox stores plain JSON)
                         "expires_at": codec.loads(codec.dumps(gen.expires_at))})


async def fail_generation(resources: Resources, generation_id: int, reason: str) -> str:
    """End a generation that cannot make a pet, telling the user why."""
    async with resources.db.session() as session, session.begin():
        gen = (await session.execute(select(PetGeneration).where(
            PetGeneration.id == generation_id).with_for_update())).scalar_one_or_none()
        if gen is None or gen.status not in ("queued", "running"):
            return gen.status if gen is not None else "missing"
        now = utcnow()
        gen.status, gen.error, gen.finished_at = "failed", reason[:255], now
        gen.elapsed_ms = int((now - gen.created_at).total_seconds() * 1000)
        events.emit_to_user(session, gen.user_id, "generation.failed",
                            {"generation_id": gen.id, "reason": gen.error})
        return "failed"


async def expire_generations(resources: Resources, now: dt.datetime | None = None,
                             batch: int = 1000) -> int:
    """Beat: done generations nobody adopted within their time become `expired`."""
    async with resources.db.session() as session, session.begin():
        result = await session.execute(
            update(PetGeneration).where(PetGeneration.status == "done",
                                        PetGeneration.expires_at <= (now or utcnow()))
            .values(status="expired").execution_options(synchronize_session=False))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


__all__ = ["GenerationBody", "StorageError", "expire_generations", "fail_generation",
           "get_generation", "request_generation", "run_generation"]
