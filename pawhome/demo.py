"""Demo data for `make run`: `python -m pawhome.demo` (idempotent: safe to run on every start).

One seeding function per domain, run in order by `seed()` inside one transaction; a domain
added later (posts, products, services ...) adds its `seed_<domain>` function to `SEEDERS`,
after the domains it refers to. Log in as any demo user with the dev-login and its openid.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import pawhome.domains  # noqa: F401  (every domain wired: the seeding runs their hooks)
from models.base import utcnow
from models.checkins import DailyCheckin
from models.users import User
from pawhome.activities import demo_activities
from pawhome.booking import demo_booking
from pawhome.community import boards
from pawhome.console import demo_staff
from pawhome.feedback import demo_feedback
from pawhome.identity import users
from pawhome.mall import addresses, delivery, demo_catalogue, demo_reviews
from pawhome.platform import activity
from pawhome.platform.resources import Resources
from pawhome.points import demo_goods
from pawhome.promotions import coupons_demo, demo_home, groupbuy_demo
from pawhome.stats import daily as stats_daily
from pawhome.virtualpet import checkin, demo_virtualpet
from settings import Settings, get_settings

# openid (the dev-login key), nickname, role, bio
DEMO_USERS = [
    ("demo-user-1", "豆豆妈 🐶", "user", "两只柯基的铲屎官 🐾"),
    ("demo-user-2", "Mochi's human", "user", "One grumpy cat, many opinions."),
    ("demo-merchant", "萌宠小铺", "merchant", "宠物用品小店，欢迎光临"),
    ("demo-merchant-2", "汪喵百货", "merchant", "玩具洗护，一站购齐"),
    ("demo-admin", "Admin", "admin", ""),
]


async def seed_users(session: AsyncSession) -> int:
    """The demo accounts, one per role; an existing account is left as it is."""
    created = 0
    for openid, nickname, role, bio in DEMO_USERS:
        user, is_new = await users.get_or_create_by_openid(session, openid)
        if is_new:
            user.nickname, user.role, user.bio = nickname, role, bio
            created += 1
    return created


async def seed_delivery(session: AsyncSession) -> int:
    """The demo shop's delivery set-up and an address for each demo buyer, so a first
    checkout can choose express, local delivery or pick-up (pawhome/mall/delivery.py)."""
    created = 0
    for openid, _, role, _ in DEMO_USERS:
        user, _ = await users.get_or_create_by_openid(session, openid)
        if role == "merchant":
            created += await delivery.seed_demo_shop(session, user.id)
        elif role == "user":
            created += await addresses.seed_demo_address(session, user.id)
    return created


async def seed_catalogue(session: AsyncSession) -> int:
    """Categories and ~20 products with SKUs in the demo shops (pawhome/mall/demo_catalogue)."""
    shops = []
    for openid, _, role, _ in DEMO_USERS:
        if role == "merchant":
            user, _ = await users.get_or_create_by_openid(session, openid)
            shops.append(user.id)
    return await demo_catalogue.seed_demo_catalogue(session, shops)


async def seed_points(session: AsyncSession) -> int:
    """A welcome points balance for the demo buyers and the points mall's goods (virtual pet
    items, a gift for points only) in the first demo shop (pawhome/points/demo_goods.py)."""
    buyers: list[int] = []
    shops: list[int] = []
    for openid, _, role, _ in DEMO_USERS:
        user, _ = await users.get_or_create_by_openid(session, openid)
        if role in ("user", "merchant"):
            (buyers if role == "user" else shops).append(user.id)
    return (await demo_goods.seed_welcome_points(session, buyers)
            + await demo_goods.seed_points_goods(session, shops[0]))


async def seed_coupons(session: AsyncSession) -> int:
    """Coupons to claim: platform ones (one for new users, one by the code PAWHOME) and one
    of the first demo shop (pawhome/promotions/coupons_demo.py)."""
    ids = {openid: (await users.get_or_create_by_openid(session, openid))[0].id
           for openid, _, _, _ in DEMO_USERS}
    return await coupons_demo.seed_demo_coupons(session, ids["demo-admin"],
                                                ids["demo-merchant"])


async def seed_reviews(session: AsyncSession) -> int:
    """A completed order of the second demo buyer in the first demo shop, reviewed (5 stars,
    published) and replied to (pawhome/mall/demo_reviews.py)."""
    buyer, _ = await users.get_or_create_by_openid(session, "demo-user-2")
    shop, _ = await users.get_or_create_by_openid(session, "demo-merchant")
    return await demo_reviews.seed_demo_review(session, buyer.id, shop.id)


async def seed_group_buy(session: AsyncSession) -> int:
    """A group-buy rule on a product of the first demo shop and an open group the second
    demo buyer opened and paid for (pawhome/promotions/groupbuy_demo.py)."""
    buyer, _ = await users.get_or_create_by_openid(session, "demo-user-2")
    shop, _ = await users.get_or_create_by_openid(session, "demo-merchant")
    return await groupbuy_demo.seed_demo_group_buy(session, buyer.id, shop.id)


async def seed_booking(session: AsyncSession) -> int:
    """Two pet-service providers (a grooming shop of the first demo merchant, a clinic with
    boarding of the second) with staff, services and a week of hours, and a pet for each
    demo buyer to book for (pawhome/booking/demo_booking.py)."""
    merchants: list[int] = []
    buyers: list[int] = []
    for openid, _, role, _ in DEMO_USERS:
        user, _ = await users.get_or_create_by_openid(session, openid)
        if role in ("user", "merchant"):
            (buyers if role == "user" else merchants).append(user.id)
    return await demo_booking.seed_demo_booking(session, merchants, buyers)


async def seed_virtual_pets(session: AsyncSession) -> int:
    """The demo cat photo for each demo buyer to generate a pet from, and an adopted pet for
    the second (pawhome/virtualpet/demo_virtualpet.py)."""
    buyers = [(await users.get_or_create_by_openid(session, openid))[0].id
              for openid in ("demo-user-1", "demo-user-2")]
    return await demo_virtualpet.seed_demo_virtual_pets(session, buyers)


async def seed_checkins(session: AsyncSession) -> int:
    """The demo buyers checked in yesterday, so today's check-in makes a streak of two
    (docs/virtual-pet.md "Daily check-in")."""
    made = 0
    for openid in ("demo-user-1", "demo-user-2"):
        user = (await users.get_or_create_by_openid(session, openid))[0]
        if (await session.execute(select(DailyCheckin.id).where(
                DailyCheckin.user_id == user.id))).first() is None:
            await checkin.check_in_at(session, user.id, utcnow() - dt.timedelta(days=1))
            made += 1
    return made


async def seed_feedback(session: AsyncSession) -> int:
    """Feedback from the demo buyers, one answered by the demo admin (docs/feedback.md)."""
    buyers = [(await users.get_or_create_by_openid(session, openid))[0].id
              for openid in ("demo-user-1", "demo-user-2")]
    admin = (await users.get_or_create_by_openid(session, "demo-admin"))[0].id
    return await demo_feedback.seed_demo_feedback(session, buyers, admin)


async def seed_activities(session: AsyncSession) -> int:
    """A free meetup of the first demo merchant with the demo buyers registered, and the
    platform's paid vaccination day (docs/activities.md)."""
    buyers = [(await users.get_or_create_by_openid(session, openid))[0].id
              for openid in ("demo-user-1", "demo-user-2")]
    merchant = (await users.get_or_create_by_openid(session, "demo-merchant"))[0].id
    admin = (await users.get_or_create_by_openid(session, "demo-admin"))[0].id
    return await demo_activities.seed_demo_activities(session, merchant, admin, buyers)


# In dependency order. Each takes the session and returns how many rows it created.
SEEDERS: list[tuple[str, Callable[[AsyncSession], Awaitable[int]]]] = [
    ("users", seed_users),
    ("boards", boards.seed_boards),
    ("delivery", seed_delivery),
    ("catalogue", seed_catalogue),
    ("points", seed_points),
    ("coupons", seed_coupons),
    ("reviews", seed_reviews),
    ("group_buy", seed_group_buy),
    ("home", demo_home.seed_demo_home),
    ("booking", seed_booking),
    ("virtual_pets", seed_virtual_pets),
    ("checkins", seed_checkins),
    ("feedback", seed_feedback),
    ("activities", seed_activities),
    ("moderation_queue", demo_staff.seed_moderation_queue),
]


async def seed(resources: Resources) -> dict[str, int]:
    """Run every seeder in one transaction; returns rows created per domain."""
    async with resources.db.session() as session, session.begin():
        return {name: await seeder(session) for name, seeder in SEEDERS}


async def seed_and_report(settings: Settings) -> str:
    resources = Resources(settings)
    try:
        created = await seed(resources)
        # The dashboard's figures of the last 30 days, from the rows just seeded (the beat
        # job keeps them current: docs/statistics.md).
        today = activity.shanghai_day()
        created["stats_days"] = await stats_daily.backfill(
            resources, today - dt.timedelta(days=29), today)
        async with resources.db.session() as session:
            total = int((await session.execute(select(func.count(User.id)))).scalar_one())
    finally:
        await resources.close()
    summary = ", ".join(f"{name} +{count}" for name, count in created.items())
    logins = ", ".join(f"{openid} ({role})" for openid, _, role, _ in DEMO_USERS)
    return f"demo data ready ({summary}; {total} users). Dev-login openids: {logins}"


if __name__ == "__main__":
    print(asyncio.run(seed_and_report(get_settings())))
