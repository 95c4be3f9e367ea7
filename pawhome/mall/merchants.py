"""Merchants: the shop record of a user with role merchant (name, logo, intro, status) and
its delivery set-up (express, local delivery, pick-up; docs/mall.md). A shop row is made on
first use, named after the user, so an admin only has to grant the role.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from models.mall import Merchant
from models.users import User
from pawhome.platform.errors import Forbidden, NotFound

SELLER_ROLES = ("merchant", "admin")


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
