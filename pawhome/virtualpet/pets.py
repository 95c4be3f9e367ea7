"""Reading virtual pets: the owner's full view (statuses decayed to now, cooldowns left,
skills, experience to the next level), everyone else's public card, the owner's list, and
releasing a pet. docs/virtual-pet.md ("Care", "Reads and the cache").

The detail is cached in Redis as the pet's *stored* part (the row as of its `status_at`,
with its image URLs and the owner's nickname), never the decayed values: every read computes
the statuses for its own moment (care.py), so a cached row stays correct while the pet sits
idle, and every write drops it after its commit (`forget`). Values are kept under a
per-pet generation, as the catalogue's are (pawhome/mall/catalogue_cache.py): a reader that
fills from rows read before a write's bump fills under the old generation, never used.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.media import Media
from models.users import User
from models.virtual_pets import STATUS_SCALE, VirtualPet
from pawhome.integrations.storage import storage_for
from pawhome.mall import catalogue_cache
from pawhome.mall.product_rendering import image_view, media_by_id
from pawhome.platform import codec
from pawhome.platform.cache import UNAVAILABLE_ERRORS, Cache
from pawhome.platform.errors import NotFound
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.virtualpet import care, leaderboards
from settings import Settings, get_settings

log = logging.getLogger("pawhome.virtualpet.pets")
NOT_FOUND = b"null"  # a cached "no such pet" (deleted or never adopted)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def _naive(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.removesuffix("Z"))


# -- the stored part and the views -------------------------------------------------------


def stored_part(pet: VirtualPet, *, images: Mapping[int, str] | None = None,
                owner_nickname: str = "") -> dict[str, Any]:
    """What the cache keeps of a pet: its row as of `status_at` (JSON), with the URLs of its
    sprite and thumbnail (`images`: media id -> URL) and its owner's nickname."""
    images = images or {}
    return {
        "id": pet.id, "owner_id": pet.owner_id, "owner_nickname": owner_nickname,
        "name": pet.name, "species": pet.species, "personality": pet.personality,
        "params": pet.params or {},
        "sprite_media_id": pet.sprite_media_id, "thumb_media_id": pet.thumb_media_id,
        "sprite_url": images.get(pet.sprite_media_id or 0, ""),
        "thumbnail_url": images.get(pet.thumb_media_id or 0, ""),
        "statuses": {s: int(getattr(pet, s)) for s in care.STATUSES},
        "status_at": _iso(pet.status_at), "exp": int(pet.exp or 0),
        "skills": list(pet.skills or []), "cooldowns": dict(pet.cooldowns or {}),
        "last_interaction_at": _iso(pet.last_interaction_at),
        "created_at": _iso(pet.created_at),
    }


def percent(statuses: Mapping[str, int]) -> dict[str, float]:
    """Thousandths as the 0-100 values clients show (one decimal)."""
    return {s: round(int(statuses[s]) / STATUS_SCALE, 1) for s in care.STATUSES}


def view_of(stored: Mapping[str, Any], now: dt.datetime, *, owner: bool,
            rules: care.Rules) -> dict[str, Any]:
    """The reply for a stored part at `now`: everything for the owner, a public card for
    anyone else."""
    level = care.level_for(int(stored["exp"]))
    card = {"id": stored["id"], "name": stored["name"], "species": stored["species"],
            "level": level, "thumbnail_url": stored["thumbnail_url"],
            "owner": {"id": stored["owner_id"], "nickname": stored["owner_nickname"]},
            "created_at": stored["created_at"]}
    if not owner:
        return card
    status_at = _naive(stored["status_at"])
    statuses = care.current(stored["statuses"], status_at, now, stored["personality"], rules)
    hungry_at = care.hungry_at(stored["statuses"], status_at, stored["personality"], rules)
    return {**card, **care.progress(int(stored["exp"])),
            "personality": stored["personality"], "params": stored["params"],
            "sprite_url": stored["sprite_url"], "sprite_media_id": stored["sprite_media_id"],
            "thumb_media_id": stored["thumb_media_id"],
            "statuses": percent(statuses), "as_of": _iso(now),
            "hungry": statuses["fullness"] < rules.hungry_below,
            "skills": stored["skills"],
            "cooldowns": care.cooldowns_left(stored["cooldowns"], now, rules),
            "last_interaction_at": stored["last_interaction_at"],
            "hungry_at": _iso(hungry_at)}


def pet_view(pet: VirtualPet, now: dt.datetime, *, owner: bool,
             images: Mapping[int, str] | None = None, owner_nickname: str = "",
             settings: Settings | None = None) -> dict[str, Any]:
    """A pet as its owner (`owner=True`) or anyone else sees it at `now`. `images` (media
    id -> URL, from `image_urls`) fills its picture URLs."""
    rules = care.rules_from(settings or get_settings())
    return view_of(stored_part(pet, images=images, owner_nickname=owner_nickname), now,
                   owner=owner, rules=rules)


def _media_url(settings: Settings, media: Media) -> str:
    shown = image_view(settings, media)
    if shown and shown["url"]:
        return str(shown["url"])
    if media.status == "ready":  # a generated picture stored as is, without variants
        return storage_for(settings).public_url(media.storage_key)
    return ""


async def image_urls(session: AsyncSession, settings: Settings,
                     pets: Iterable[VirtualPet]) -> dict[int, str]:
    """Media id -> URL of the pets' sprites and thumbnails. Caller commits."""
    ids = [i for pet in pets for i in (pet.sprite_media_id, pet.thumb_media_id) if i]
    return {media_id: _media_url(settings, media)
            for media_id, media in (await media_by_id(session, ids)).items()}


async def nickname_of(session: AsyncSession, user_id: int) -> str:
    found = (await session.execute(select(User.nickname).where(User.id == user_id))).first()
    return str(found[0]) if found else ""


async def live_pet(session: AsyncSession, pet_id: int, *, lock: bool = False) -> VirtualPet | None:
    """The pet unless released (locked FOR UPDATE with `lock`, read afresh). Caller commits."""
    statement = select(VirtualPet).where(VirtualPet.id == pet_id,
                                         VirtualPet.deleted_at.is_(None))
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


# -- the cache ---------------------------------------------------------------------------


def generation_key(cache: Cache, pet_id: int) -> str:
    return cache.key("vpet", "pet", int(pet_id), "gen")


def detail_key(cache: Cache, pet_id: int) -> str:
    return cache.key("vpet", "pet", int(pet_id))


def detail_reads(resources: Resources, pet_id: int | str) -> list[str]:
    """The Redis keys `pet_detail` reads (read ahead by the gateway's admission call)."""
    return [generation_key(resources.cache, int(pet_id)), detail_key(resources.cache, int(pet_id))]


async def forget(cache: Cache, pet_ids: Iterable[int]) -> None:
    """After a committed change of these pets: stop serving their cached rows. A Redis
    outage is logged: the change is committed and the TTL bounds the staleness."""
    ids = sorted({int(i) for i in pet_ids})
    if not ids:
        return
    ttl = int(cache.settings.vpet_detail_cache_seconds) + catalogue_cache.GENERATION_MARGIN_SECONDS
    try:
        async with cache.redis.pipeline(transaction=False) as pipe:
            for pet_id in ids:
                pipe.incr(generation_key(cache, pet_id))
                pipe.expire(generation_key(cache, pet_id), ttl)
                pipe.delete(detail_key(cache, pet_id))
            await pipe.execute()
    except UNAVAILABLE_ERRORS as error:
        log.warning("virtual pet cache not dropped (pets %s): %r", ids, error)


async def _stored_payload(resources: Resources, pet_id: int,
                          known: dict[str, Any] | None) -> bytes:
    gen_key, value_key = detail_reads(resources, pet_id)
    generation, payload = await catalogue_cache.read(resources.cache, gen_key, value_key, known)
    if payload is not None:
        return payload
    async with resources.db.session() as session:
        pet = await live_pet(session, pet_id)
        if pet is None:
            payload = NOT_FOUND
        else:
            payload = codec.dumps(stored_part(
                pet, images=await image_urls(session, resources.settings, [pet]),
                owner_nickname=await nickname_of(session, pet.owner_id)))
    await catalogue_cache.fill(resources.cache, value_key, generation, payload,
                               resources.settings.vpet_detail_cache_seconds)
    return payload


async def pet_detail(resources: Resources, viewer_id: int | None, pet_id: int,
                     known: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET /v1/virtual-pets/{id}: the owner's full view, or the public card; 404 for a
    released pet."""
    payload = await _stored_payload(resources, pet_id, known)
    if payload == NOT_FOUND:
        raise NotFound("Virtual pet not found")
    stored = codec.loads(payload)
    return view_of(stored, utcnow(), owner=viewer_id == stored["owner_id"],
                   rules=care.rules_from(resources.settings))


async def my_pets(resources: Resources, user_id: int, query: PageQuery) -> dict[str, Any]:
    """GET /v1/virtual-pets: the caller's pets, newest first, each as its owner sees it."""
    conditions = [VirtualPet.owner_id == user_id, VirtualPet.deleted_at.is_(None)]
    async with resources.db.session() as session:
        total = int((await session.execute(select(func.count(VirtualPet.id))
                                           .where(*conditions))).scalar_one())
        pets = list((await session.execute(
            select(VirtualPet).where(*conditions).order_by(VirtualPet.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        images = await image_urls(session, resources.settings, pets)
        nickname = await nickname_of(session, user_id) if pets else ""
    now = utcnow()
    return page_result([pet_view(pet, now, owner=True, images=images, owner_nickname=nickname,
                                 settings=resources.settings) for pet in pets], total, query)


async def release_pet(resources: Resources, user_id: int, pet_id: int) -> dict[str, Any]:
    """DELETE /v1/virtual-pets/{id}: the owner lets the pet go (kept for the record, gone
    from every read; no more reminders)."""
    async with resources.db.session() as session, session.begin():
        pet = await live_pet(session, pet_id, lock=True)
        if pet is None or pet.owner_id != user_id:
            raise NotFound("Virtual pet not found")
        await session.execute(update(VirtualPet).where(VirtualPet.id == pet_id).values(
            deleted_at=utcnow(), hungry_remind_at=None))
        await leaderboards.pet_progressed(session, pet)  # the owner's best pet may change
    await forget(resources.cache, [pet_id])
    return {"id": pet_id, "released": True}
