"""Pet cards: a user's real pets, the one module that writes `pets`.

Owners manage their cards under /v1/pets; anyone may list a user's cards on their profile
(unless one of them blocked the other). Posts and, later, appointments refer to pets by id.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.community import Pet
from models.users import User
from pawhome.identity.users import is_blocked
from pawhome.media import uploads as media
from pawhome.messaging import chat
from pawhome.platform.errors import (
    AttachmentRefused,
    Conflict,
    NotFound,
    ValidationFailed,
    field_error,
)
from pawhome.platform.fields import NOT_BLANK, Gender, json_number, no_null_default
from pawhome.platform.resources import Resources

Species = Literal["dog", "cat", "rabbit", "bird", "other"]
# A JSON number (pydantic would also take a numeric string, and document that it does).
WeightKg = Annotated[Decimal, BeforeValidator(json_number),
                     Field(gt=0, le=1000, max_digits=6, decimal_places=2),
                     WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1000})]
MAX_PETS_PER_OWNER = 50


def _clean_text(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class PetFields(BaseModel):
    """Fields of a pet card; in an update every field is optional and only those sent change."""
    model_config = ConfigDict(extra="forbid")

    # name and species may be left out of an update, never cleared (no null).
    name: str = Field(None, min_length=1, max_length=32,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    species: Species = Field(None,  # type: ignore[arg-type]
                             json_schema_extra=no_null_default)
    breed: str | None = Field(None, max_length=64)
    gender: Gender | None = None
    birthday: dt.date | None = None
    weight_kg: WeightKg | None = None
    neutered: bool | None = None
    avatar_media_id: int | None = Field(None, ge=1, le=2**63 - 1)
    bio: str | None = Field(None, max_length=500)

    # After the length checks, so that the limits are the document's (on what was sent).
    _strip = field_validator("name", "breed", "bio")(_clean_text)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("birthday")
    @classmethod
    def _birthday_not_in_future(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and value > dt.date.today():
            raise ValueError("must not be in the future")
        return value


class PetCreate(PetFields):
    # The same pattern as PetFields.name: without it the document allowed a name of only
    # whitespace (e.g. U+0085) that the not-blank check then refused (the fuzz gate found it).
    name: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    species: Species


def pet_view(pet: Pet) -> dict[str, Any]:
    return {
        "id": pet.id, "owner_id": pet.owner_id, "name": pet.name, "species": pet.species,
        "breed": pet.breed, "gender": pet.gender,
        "birthday": pet.birthday.isoformat() if pet.birthday else None,
        "weight_kg": float(pet.weight_kg) if pet.weight_kg is not None else None,
        "neutered": pet.neutered, "avatar_media_id": pet.avatar_media_id, "bio": pet.bio,
        "created_at": pet.created_at, "updated_at": pet.updated_at,
    }


async def _check_avatar(session: AsyncSession, owner_id: int, media_id: int | None) -> None:
    if media_id is not None:
        await media.require_ready(session, owner_id, [media_id], kind="image",
                                  field="avatar_media_id")


async def _own_pet(session: AsyncSession, owner_id: int, pet_id: int) -> Pet:
    """The owner's live pet card; another user's card is reported as missing (404)."""
    pet = await session.get(Pet, pet_id)
    if pet is None or pet.owner_id != owner_id or pet.deleted_at is not None:
        raise NotFound("Pet not found")
    return pet


async def _own_pets(session: AsyncSession, owner_id: int) -> list[Pet]:
    return list((await session.execute(select(Pet).where(
        Pet.owner_id == owner_id, Pet.deleted_at.is_(None)).order_by(Pet.id))).scalars())


async def visible_pets(session: AsyncSession, viewer_id: int | None,
                       user_id: int) -> list[Pet]:
    """A user's pet cards as shown on their profile; a banned user, or one on either side
    of a block with the viewer, has none to show (404, as for the profile)."""
    user = await session.get(User, user_id)
    if user is None or user.status == "banned":
        raise NotFound("User not found")
    if viewer_id is not None and viewer_id != user_id and (
            await is_blocked(session, user_id, viewer_id)
            or await is_blocked(session, viewer_id, user_id)):
        raise NotFound("User not found")
    return await _own_pets(session, user_id)


# -- REST-facing units of work ------------------------------------------------------------------


async def create_pet(resources: Resources, owner_id: int, body: PetCreate) -> dict[str, Any]:
    """A new pet card for the owner, at most MAX_PETS_PER_OWNER live ones."""
    async with resources.db.session() as session, session.begin():
        count = (await session.execute(select(func.count(Pet.id)).where(
            Pet.owner_id == owner_id, Pet.deleted_at.is_(None)))).scalar_one()
        if count >= MAX_PETS_PER_OWNER:
            # A quota, not a field of the request: a conflict with what the user already has.
            raise Conflict(f"At most {MAX_PETS_PER_OWNER} pet cards per user")
        await _check_avatar(session, owner_id, body.avatar_media_id)
        pet = Pet(owner_id=owner_id, name=body.name, species=body.species,
                  breed=body.breed or "", gender=body.gender or 0, birthday=body.birthday,
                  weight_kg=body.weight_kg, neutered=body.neutered,
                  avatar_media_id=body.avatar_media_id, bio=body.bio or "")
        session.add(pet)
        await session.flush()
        return pet_view(pet)


async def get_own_pet(resources: Resources, owner_id: int, pet_id: int) -> dict[str, Any]:
    """One of the owner's pet cards (another user's is 404)."""
    async with resources.db.session() as session:
        return pet_view(await _own_pet(session, owner_id, pet_id))


async def update_pet(resources: Resources, owner_id: int, pet_id: int,
                     body: PetFields) -> dict[str, Any]:
    """Change the fields sent (null clears an optional field)."""
    async with resources.db.session() as session, session.begin():
        pet = await _own_pet(session, owner_id, pet_id)
        changes = body.model_dump(exclude_unset=True)
        for required in ("name", "species"):
            if required in changes and changes[required] is None:
                raise ValidationFailed(errors=[field_error(required, "must not be null")])
        if changes.get("avatar_media_id") is not None and \
                changes["avatar_media_id"] != pet.avatar_media_id:
            await _check_avatar(session, owner_id, changes["avatar_media_id"])
        defaults = {"breed": "", "bio": "", "gender": 0}
        for name, value in changes.items():
            setattr(pet, name, defaults.get(name, value) if value is None else value)
        pet.updated_at = utcnow()
        await session.flush()
        return pet_view(pet)


async def delete_pet(resources: Resources, owner_id: int, pet_id: int) -> dict[str, Any]:
    """Soft delete: posts that tagged the pet keep their ids, the card stops being listed."""
    async with resources.db.session() as session, session.begin():
        pet = await _own_pet(session, owner_id, pet_id)
        pet.deleted_at = utcnow()
    return {"id": pet_id, "deleted": True}


async def list_own_pets(resources: Resources, owner_id: int) -> dict[str, Any]:
    """{"items"}: the owner's pet cards."""
    async with resources.db.session() as session:
        return {"items": [pet_view(p) for p in await _own_pets(session, owner_id)]}


async def list_user_pets(resources: Resources, viewer_id: int | None,
                         user_id: int) -> dict[str, Any]:
    """{"items"}: a user's pet cards as shown on their profile (visible_pets)."""
    async with resources.db.session() as session:
        return {"items": [pet_view(p) for p in await visible_pets(session, viewer_id,
                                                                  user_id)]}


# -- what other domains check -------------------------------------------------------------------


async def require_own_pets(session: AsyncSession, owner_id: int, pet_ids: list[int],
                           field: str = "pet_ids") -> None:
    """422 unless every id is a live pet card of the owner (posts tag only their own pets)."""
    wanted = set(pet_ids)
    if not wanted:
        return
    found = set((await session.execute(select(Pet.id).where(
        Pet.id.in_(wanted), Pet.owner_id == owner_id, Pet.deleted_at.is_(None)))).scalars())
    missing = sorted(wanted - found)
    if missing:
        raise ValidationFailed(errors=[field_error(
            field, f"not your pet: {', '.join(str(m) for m in missing)}")])


# -- pet cards in direct messages ----------------------------------------------------------------


async def check_chat_pet_card(session: AsyncSession, sender_id: int, recipient_id: int,
                              pet_id: int) -> dict[str, Any]:
    """A pet card shared in a DM: the pet is on its owner's public profile, which neither
    person may be blocked from (nor may the owner be banned)."""
    pet = await session.get(Pet, pet_id)
    if pet is None or pet.deleted_at is not None:
        raise NotFound("Pet not found")
    await visible_pets(session, sender_id, pet.owner_id)  # 404 across a block or a ban
    try:
        await visible_pets(session, recipient_id, pet.owner_id)
    except NotFound:
        raise AttachmentRefused("The recipient cannot see this pet", errors=[
            field_error("card.id", "not visible to the recipient")]) from None
    return {"name": pet.name, "species": pet.species, "breed": pet.breed,
            "owner_id": pet.owner_id, "avatar_media_id": pet.avatar_media_id}


chat.register_attachment_check("pet", check_chat_pet_card)
