"""Points demo data for `make run`: a welcome balance for each demo buyer (once: the ledger
key makes it so) and the points mall — virtual pet food, toys and accessories with
unlimited or limited stock, a physical gift for points only, and an item sold for cash or
points — in the first demo shop. Idempotent, like every seeder.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import VIRTUAL_KINDS, Product, Sku
from pawhome.mall import stock
from pawhome.points import ledger
from pawhome.search import index as search

WELCOME_POINTS = 2000

# kind, name, subtitle, cash price fen (0: points only), points price, stock (-1: unlimited)
POINTS_GOODS = [
    ("virtual_pet_food", "小鱼干", "虚拟宠物零食：心情 +10", 0, 100, -1),
    ("virtual_pet_food", "豪华猫罐头", "虚拟宠物主食：饱食 +30", 0, 300, -1),
    ("virtual_pet_toy", "逗猫棒", "虚拟宠物玩具：亲密 +15", 0, 200, -1),
    ("virtual_pet_toy", "毛线球", "虚拟宠物玩具：心情 +20", 0, 250, -1),
    ("virtual_pet_accessory", "小皇冠", "虚拟宠物装扮：限量 100 个", 0, 1500, 100),
    ("virtual_pet_accessory", "蝴蝶结", "虚拟宠物装扮", 0, 600, -1),
    ("physical", "定制宠物名牌", "积分兑换 包邮到家", 0, 1800, 30),
    ("physical", "宠物饮水碗", "现金或积分购买", 2900, 2500, 50),
]


async def seed_points_goods(session: AsyncSession, shop_id: int) -> int:
    """The points mall's products, unless virtual goods exist already. Caller commits."""
    if (await session.execute(select(func.count(Product.id)).where(
            Product.kind.in_(VIRTUAL_KINDS)))).scalar_one():
        return 0
    created, now = 0, utcnow()
    for kind, name, subtitle, price, points, limit in POINTS_GOODS:
        product = Product(merchant_id=shop_id, kind=kind, name=name, subtitle=subtitle,
                          description=f"{name}，{subtitle}。积分商城演示商品。",
                          tags=["积分商城"], pet_types=["cat", "dog"], media_ids=[],
                          spec_attrs=[], status="on_sale", on_sale_at=now, price_min=price,
                          price_max=price)
        session.add(product)
        await session.flush()
        sku = Sku(product_id=product.id, spec_values=[], spec_key="", spec_text="",
                  price=price, original_price=0, points_price=points,
                  stock=stock.UNLIMITED if limit == stock.UNLIMITED else 0)
        session.add(sku)
        await session.flush()
        if limit > 0:
            await stock.adjust(session, sku.id, limit, actor_id=shop_id, note="demo stock",
                               reason="initial")
        search.index_later(session, "product", product.id)
        created += 2
    return created


async def seed_welcome_points(session: AsyncSession, user_ids: list[int]) -> int:
    """A welcome balance for each demo buyer, once. Caller commits."""
    created = 0
    for user_id in user_ids:
        moved = await ledger.change(session, user_id, WELCOME_POINTS, reason="activity",
                                    key="demo:welcome", ref_type="activity", ref_id="demo",
                                    note="演示账户欢迎积分")
        created += 0 if moved.replayed else 1
    return created
