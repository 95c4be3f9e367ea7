"""The virtual pet (萌宠伙伴): generations from a photo (the `ai` queue's work and its result,
kept until adopted), adopted pets with their care statuses, and the log of every
interaction. pawhome/virtualpet/, docs/virtual-pet.md.

Statuses decay lazily: a pet row stores each status as it was at `status_at`, in thousandths
(0-100,000 = 0-100.000), and every read computes the current values from them and the clock;
every write stores the computed values with a new `status_at`. Ten million idle pets cost
nothing.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MYSQL_TABLE_ARGS, Base, BigId, UTCDateTime, utcnow

GENERATION_STATES = ("queued", "running", "done", "failed", "adopted", "expired")
STATUS_SCALE = 1000  # stored statuses are thousandths: 100.000 is 100_000
STATUS_MAX = 100 * STATUS_SCALE
INTERACTION_TYPES = ("feeding", "petting", "playing", "cleaning", "training")


class PetGeneration(Base):
    """A virtual pet generated from a photo: queued by the user, worked by the `ai` queue
    (stage by stage), then its parameters and images kept until adopted or expired."""
    __tablename__ = "pet_generations"
    __table_args__ = (Index("ix_pet_generations_user_created", "user_id", "created_at"),
                      Index("ix_pet_generations_status_expires", "status", "expires_at"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId)
    media_id: Mapped[int] = mapped_column(BigId)  # the uploaded photo
    hints: Mapped[dict] = mapped_column(JSON, default=dict)  # species, breed, name ideas
    status: Mapped[str] = mapped_column(String(16), default="queued")  # GENERATION_STATES
    stage: Mapped[str] = mapped_column(String(24), default="")  # the last stage reached
    error: Mapped[str] = mapped_column(String(255), default="")  # why it failed
    provider: Mapped[str] = mapped_column(String(16), default="")  # baseline | external
    params: Mapped[dict | None] = mapped_column(JSON)  # species, colours, face, markings...
    personality: Mapped[str] = mapped_column(String(16), default="")
    sprite_media_id: Mapped[int | None] = mapped_column(BigInteger)
    thumb_media_id: Mapped[int | None] = mapped_column(BigInteger)
    elapsed_ms: Mapped[int | None] = mapped_column(Integer)  # request to done
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # kept until then
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class VirtualPet(Base):
    """An adopted virtual pet. Statuses as of `status_at` (thousandths, see the module)."""
    __tablename__ = "virtual_pets"
    __table_args__ = (
        Index("ix_virtual_pets_owner", "owner_id", "id"),
        Index("ix_virtual_pets_level", "level", "exp", "exp_reached_at"),
        Index("ix_virtual_pets_updated", "updated_at"),  # the rebuild's late changes
        CheckConstraint("mood BETWEEN 0 AND 100000 AND fullness BETWEEN 0 AND 100000 AND "
                        "cleanliness BETWEEN 0 AND 100000 AND affection BETWEEN 0 AND 100000",
                        name="statuses_in_range"),
        CheckConstraint("exp >= 0 AND level >= 1", name="progress_sane"),
        MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigId)
    generation_id: Mapped[int] = mapped_column(BigId, unique=True)
    name: Mapped[str] = mapped_column(String(16))
    species: Mapped[str] = mapped_column(String(16))  # cat, dog, other
    params: Mapped[dict] = mapped_column(JSON)  # copied from the generation
    personality: Mapped[str] = mapped_column(String(16))  # scales the rates
    sprite_media_id: Mapped[int | None] = mapped_column(BigInteger)
    thumb_media_id: Mapped[int | None] = mapped_column(BigInteger)
    mood: Mapped[int] = mapped_column(Integer)
    fullness: Mapped[int] = mapped_column(Integer)
    cleanliness: Mapped[int] = mapped_column(Integer)
    affection: Mapped[int] = mapped_column(Integer)
    status_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the statuses' moment
    level: Mapped[int] = mapped_column(SmallInteger, default=1)
    exp: Mapped[int] = mapped_column(Integer, default=0)  # total experience
    exp_reached_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    skills: Mapped[list] = mapped_column(JSON, default=list)
    cooldowns: Mapped[dict] = mapped_column(JSON, default=dict)  # type -> last use (ISO)
    last_interaction_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    hungry_remind_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    hungry_reminded_on: Mapped[dt.date | None] = mapped_column(Date)  # at most one a day
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PetInteraction(Base):
    """One interaction with a pet: what it was, the item it used, the statuses before and
    after, the experience it gave."""
    __tablename__ = "pet_interactions"
    __table_args__ = (Index("ix_pet_interactions_pet", "pet_id", "id"),
                      # the weekly boards, read a range of users at a time
                      Index("ix_pet_interactions_user_created", "user_id", "created_at"),
                      Index("ix_pet_interactions_created", "created_at"),  # late changes
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pet_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(BigId)
    type: Mapped[str] = mapped_column(String(16))  # INTERACTION_TYPES
    item_sku_id: Mapped[int | None] = mapped_column(BigInteger)
    changes: Mapped[dict] = mapped_column(JSON)  # status -> [before, after]
    exp_gained: Mapped[int] = mapped_column(Integer, default=0)
    level_after: Mapped[int] = mapped_column(SmallInteger)
    skill_unlocked: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
