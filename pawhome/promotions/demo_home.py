"""The mall home's demo content for `make run`: two banners, a pop-up for new users and one
shown daily, and the product slots (recommended picked from the demo catalogue; hot left
to the best sellers, group-buy to the products with an active group-buy rule — the demo's
is pawhome/promotions/groupbuy_demo.py). Idempotent: nothing is added once a banner exists.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.home import HomeBanner, HomePopup, HomeSlotItem
from models.mall import Product

IMAGES = "https://picsum.photos/seed"


async def seed_demo_home(session: AsyncSession) -> int:
    """Rows created. Caller commits."""
    if (await session.execute(select(HomeBanner.id).limit(1))).first() is not None:
        return 0
    products = list((await session.execute(select(Product.id).where(
        Product.status == "on_sale", Product.deleted_at.is_(None), Product.kind == "physical")
        .order_by(Product.id).limit(6))).scalars())
    rows: list[HomeBanner | HomePopup | HomeSlotItem] = [
        HomeBanner(title="双十二 萌宠好物节", image_url=f"{IMAGES}/pawhome-1212/750/320",
                   link_type="page", link_value="/pages/mall/index", sort=0),
        HomeBanner(title="新品冻干 尝鲜价", image_url=f"{IMAGES}/pawhome-freeze/750/320",
                   link_type="product" if products else "none",
                   link_value=str(products[0]) if products else "", sort=1),
        HomePopup(title="新人专享 首单立减", image_url=f"{IMAGES}/pawhome-newbie/600/800",
                  link_type="page", link_value="/pages/coupons/index", rule="new_users"),
        HomePopup(title="今日签到领积分", image_url=f"{IMAGES}/pawhome-checkin/600/800",
                  link_type="page", link_value="/pages/pet/checkin", rule="daily", sort=1),
    ]
    rows += [HomeSlotItem(slot="recommended", product_id=p, sort=n)
             for n, p in enumerate(products[:4])]
    session.add_all(rows)
    await session.flush()
    return len(rows)
