"""Merchants: the shop record of a user with role merchant (name, logo, intro, status) and
its delivery set-up (express, local delivery, pick-up; pawhome/mall/delivery.py, docs/mall.md).
A shop row is made on first use, named after the user, so an admin only has to grant the role.

This module writes the shop's profile; every merchant write records an audit entry in the
same transaction.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Merchant
from models.users import User
from pawhome.integrations.storage import storage_for
from pawhome.media import uploads as media
from pawhome.platform import audit
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import Forbidden, NotFound, ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, no_null_default
from pawhome.platform.resources import Resources
from settings import Settings

SELLER_ROLES = ("merchant", "admin")
LOGO_WIDTH = 240  # the logo's JPEG variant: the narrowest at least this wide
# Printable ASCII without spaces: a URL as sent over the wire (non-ASCII percent-encoded).
LOGO_URL = r"^(https?://[!-~]{1,500})?$"


async def ensure_merchant(session: AsyncSession, user_id: int) -> Merchant:
    """The shop of a merchant user, created with defaults on first use. Refuses a user
    who is not (or no longer) a merchant. Caller commits."""
    found = await session.get(Merchant, user_id)
    if found is not None:
        return found
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    if user.role != "merchant":
        raise Forbidden("Only merchants have a shop")
    merchant = Merchant(user_id=user_id, name=(user.nickname or f"店铺{user_id}")[:64],
                        express_regions=[], local_windows=[])
    session.add(merchant)
    await session.flush()
    return merchant


async def get_merchant(session: AsyncSession, merchant_id: int) -> Merchant:
    found = await session.get(Merchant, merchant_id)
    if found is None:
        raise NotFound("No such merchant")
    return found


async def open_shop(session: AsyncSession, merchant_id: int) -> Merchant:
    """A shop buyers may see: it exists and is not suspended (else NotFound). Caller
    commits."""
    found = await session.get(Merchant, merchant_id)
    if found is None or found.status != "active":
        raise NotFound("No such shop")
    return found


async def lock_shop(session: AsyncSession, merchant_id: int) -> Merchant:
    """The merchant's shop (made on first use), its row locked for this unit of work: a
    merchant's concurrent edits of its set-up then apply one after the other. Caller
    commits (in run_transaction: two first uses may both insert the row)."""
    await ensure_merchant(session, merchant_id)
    return (await session.execute(select(Merchant).where(Merchant.user_id == merchant_id)
                                  .with_for_update()
                                  .execution_options(populate_existing=True))).scalar_one()


# -- the shop profile ---------------------------------------------------------------------------


class ShopFields(BaseModel):
    """The fields sent change; a logo is a URL or one of the merchant's uploaded images."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(None, min_length=1, max_length=64,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    intro: str = Field(None, max_length=500,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    logo_url: str = Field(None, max_length=512, pattern=LOGO_URL,  # type: ignore[assignment]
                          description="an http(s) URL; empty removes the logo",
                          json_schema_extra=no_null_default)
    logo_media_id: int = Field(None, ge=1, le=2**63 - 1,  # type: ignore[assignment]
                               description="a ready image the merchant uploaded",
                               json_schema_extra=no_null_default)

    @field_validator("name", "intro")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


SHOP_RULES = {"logo_media_id": "a ready image the merchant uploaded",
              "logo_url": "not sent together with logo_media_id"}


class ShopView(BaseModel):
    id: int
    name: str
    logo_url: str
    logo_media_id: int | None
    intro: str
    status: str


def shop_view(merchant: Merchant) -> dict[str, Any]:
    return {"id": merchant.user_id, "name": merchant.name, "logo_url": merchant.logo_url,
            "logo_media_id": merchant.logo_media_id, "intro": merchant.intro,
            "status": merchant.status}


def _profile(merchant: Merchant) -> dict[str, Any]:
    return {"name": merchant.name, "logo_url": merchant.logo_url,
            "logo_media_id": merchant.logo_media_id, "intro": merchant.intro}


async def _logo_url(session: AsyncSession, settings: Settings, merchant_id: int,
                    media_id: int) -> str:
    (image,) = await media.require_ready(session, merchant_id, [media_id], kind="image",
                                         field="logo_media_id")
    found = media.jpeg_variant(image, LOGO_WIDTH)
    if found is None:
        raise ValidationFailed(errors=[field_error("logo_media_id", "has no image to show")])
    return storage_for(settings).public_url(found[1])


async def get_shop(resources: Resources, merchant_id: int) -> dict[str, Any]:
    """The merchant's own shop profile (made on first use)."""
    async def work(session: AsyncSession) -> dict[str, Any]:
        return shop_view(await ensure_merchant(session, merchant_id))

    return await run_transaction(resources.db, work)


async def update_shop(resources: Resources, merchant_id: int,
                      body: ShopFields) -> dict[str, Any]:
    """Change the shop's name, intro or logo (audited)."""
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise ValidationFailed(errors=[field_error(name, "must not be null")])
    if "logo_url" in changes and "logo_media_id" in changes:
        raise ValidationFailed(errors=[field_error(
            "logo_url", "send logo_url or logo_media_id, not both")])

    async def work(session: AsyncSession) -> dict[str, Any]:
        merchant = await lock_shop(session, merchant_id)
        before = _profile(merchant)
        if "logo_media_id" in changes:
            merchant.logo_url = await _logo_url(session, resources.settings, merchant_id,
                                                int(changes["logo_media_id"]))
            merchant.logo_media_id = int(changes["logo_media_id"])
        if "logo_url" in changes:
            merchant.logo_url, merchant.logo_media_id = str(changes["logo_url"]), None
        for name in ("name", "intro"):
            if name in changes:
                setattr(merchant, name, changes[name])
        after = _profile(merchant)
        if after != before:
            merchant.updated_at = utcnow()
            audit.record(session, actor_id=merchant_id, actor_role="merchant",
                         action="merchant.shop_update", target_type="merchant",
                         target_id=merchant_id,
                         before={k: v for k, v in before.items() if after[k] != v},
                         after={k: v for k, v in after.items() if before[k] != v})
        await session.flush()
        return shop_view(merchant)

    return await run_transaction(resources.db, work)
