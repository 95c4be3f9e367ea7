"""The demo shop's catalogue for `make run`: a category tree and about twenty products with
SKUs (flavour × size and the like, prices in fen, stock on the ledger) across two demo
shops, on sale and indexed for search, so a newcomer can browse, search, fill a cart from
two shops and check out. Demo data skips moderation (it is ours); everything else goes the
way a merchant's products do.
"""
from __future__ import annotations

import itertools

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Category, Product, Sku
from pawhome.mall import stock
from pawhome.search import index as search

# parent -> children
CATEGORIES = {"主粮": ["猫粮", "狗粮"], "零食": ["冻干", "肉干"], "用品": ["猫砂", "玩具", "洗护"]}

# shop index, category, name, subtitle, brand, pet types, [(attribute, values)], base price fen
PRODUCTS = [
    (0, "猫粮", "鸡肉冻干双拼猫粮", "高蛋白 无谷配方", "爪爪家", ["cat"],
     [("口味", ["鸡肉", "三文鱼"]), ("规格", ["1.5kg", "5kg"])], 6900),
    (0, "猫粮", "幼猫奶糕粮", "易消化 小颗粒", "爪爪家", ["cat"], [("规格", ["1kg", "2kg"])], 5900),
    (0, "狗粮", "全犬种成犬粮", "关节养护配方", "汪星球", ["dog"],
     [("规格", ["2kg", "10kg"])], 8900),
    (0, "狗粮", "小型犬美毛粮", "深海鱼油 亮毛", "汪星球", ["dog"],
     [("口味", ["牛肉", "鸭肉"]), ("规格", ["1.5kg"])], 7900),
    (0, "冻干", "鸡胸肉冻干", "单一肉源 猫狗通用", "爪爪家", ["cat", "dog"],
     [("规格", ["100g", "500g"])], 3900),
    (0, "冻干", "鹌鹑冻干", "整只冻干 磨牙补钙", "爪爪家", ["cat"], [("规格", ["80g"])], 4500),
    (0, "肉干", "牛肉粒训练零食", "训练奖励 小颗粒", "汪星球", ["dog"],
     [("口味", ["原味", "奶酪"]), ("规格", ["200g"])], 2900),
    (0, "猫砂", "豆腐猫砂", "可冲厕所 低尘", "净爪", ["cat"],
     [("香型", ["原味", "绿茶", "水蜜桃"]), ("规格", ["6L"])], 3500),
    (0, "猫砂", "膨润土猫砂", "强力结团", "净爪", ["cat"], [("规格", ["10kg"])], 3900),
    (0, "玩具", "逗猫棒套装", "羽毛替换头 5 件", "乐宠", ["cat"], [("颜色", ["粉", "蓝"])], 1990),
    (1, "玩具", "耐咬磨牙绳结", "纯棉 不掉渣", "乐宠", ["dog"], [("尺寸", ["S", "M", "L"])], 2490),
    (1, "玩具", "漏食益智球", "慢食 解闷", "乐宠", ["dog", "cat"], [("颜色", ["橙", "绿"])], 3290),
    (1, "洗护", "宠物香波", "温和无泪 柔顺", "净爪", ["dog", "cat"],
     [("规格", ["300ml", "500ml"])], 3900),
    (1, "洗护", "宠物湿巾", "除臭 无酒精", "净爪", ["dog", "cat"], [("规格", ["80抽×3包"])], 2590),
    (1, "洗护", "指甲剪套装", "防剪伤 带锉刀", "乐宠", ["dog", "cat"], [("尺寸", ["小号", "大号"])],
     2990),
    (1, "狗粮", "老年犬低脂粮", "控重 护心", "汪星球", ["dog"], [("规格", ["2kg"])], 9900),
    (1, "零食", "兔子磨牙草饼", "提摩西草 压缩", "兔兔屋", ["rabbit"], [("规格", ["200g"])], 1890),
    (1, "主粮", "鹦鹉混合谷物", "多种谷物 坚果", "羽宠", ["bird"], [("规格", ["1kg"])], 2800),
    (1, "肉干", "鸭肉干", "低温烘焙 无添加", "汪星球", ["dog"], [("规格", ["150g", "400g"])], 2690),
    (1, "冻干", "三文鱼冻干", "Omega-3 美毛", "爪爪家", ["cat"], [("规格", ["60g"])], 3590),
]


async def _categories(session: AsyncSession) -> tuple[dict[str, int], int]:
    ids, created = {}, 0
    for sort, (parent, children) in enumerate(CATEGORIES.items()):
        top = Category(name=parent, sort=sort)
        session.add(top)
        await session.flush()
        ids[parent] = top.id
        for child_sort, child in enumerate(children):
            row = Category(name=child, parent_id=top.id, sort=child_sort)
            session.add(row)
            await session.flush()
            ids[child] = row.id
        created += 1 + len(children)
    return ids, created


async def seed_demo_catalogue(session: AsyncSession, shop_ids: list[int]) -> int:
    """Categories and products for the demo shops, unless there are categories already.
    Returns the rows created. Caller commits."""
    if (await session.execute(select(func.count(Category.id)))).scalar_one():
        return 0
    categories, created = await _categories(session)
    now = utcnow()
    for shop, category, name, subtitle, brand, pets, attrs, base in PRODUCTS:
        product = Product(merchant_id=shop_ids[shop % len(shop_ids)],
                          category_id=categories[category], name=name, subtitle=subtitle,
                          description=f"{name}，{subtitle}。演示商品。", brand=brand,
                          tags=[category],
                          pet_types=pets, media_ids=[],
                          spec_attrs=[{"name": a, "values": v} for a, v in attrs],
                          status="on_sale", on_sale_at=now, price_min=base, price_max=base)
        session.add(product)
        await session.flush()
        prices = []
        for step, values in enumerate(itertools.product(*(v for _, v in attrs))):
            price = base + step * 1000
            prices.append(price)
            sku = Sku(product_id=product.id, spec_values=list(values),
                      spec_key="|".join(values),
                      spec_text="; ".join(f"{a}:{v}" for (a, _), v in zip(attrs, values,
                                                                          strict=True)),
                      price=price, original_price=price + 1000, stock=0, weight_g=500)
            session.add(sku)
            await session.flush()
            await stock.adjust(session, sku.id, 50 + 10 * step, actor_id=product.merchant_id,
                               note="demo stock", reason="initial")
            created += 1
        product.price_min, product.price_max = min(prices), max(prices)
        search.index_later(session, "product", product.id)
        created += 1
    return created
