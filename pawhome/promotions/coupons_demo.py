"""Demo coupons for `make run`: platform coupons to claim (a new-user one, 满减, a category
discount, one by the code PAWHOME) and a coupon of the first demo shop, so a newcomer can
claim a coupon and watch checkout pick it. docs/promotions.md ("Coupons").
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.coupons import CouponTemplate
from models.mall import Category
from pawhome.promotions import coupons_terms as terms
from pawhome.promotions.coupons_terms import TemplateTerms

DEMO_CODE = "PAWHOME"


async def seed_demo_coupons(session: AsyncSession, admin_id: int, shop_id: int | None) -> int:
    """The demo templates, unless there are templates already. Caller commits."""
    if (await session.execute(select(func.count(CouponTemplate.id)))).scalar_one():
        return 0
    staples = (await session.execute(select(Category.id).where(
        Category.name == "主粮", Category.parent_id.is_(None)))).scalars().first()
    today = terms.local_day(utcnow())
    offers: list[tuple[int | None, str, str, int, TemplateTerms]] = [
        (None, "新人专享 无门槛5元", "首单立减，新用户专享", 10_000, TemplateTerms(
            kind="no_threshold", amount_off=500, valid_days=30, new_users_only=True)),
        (None, "全场满99减20", "平台券，全场通用", 5_000, TemplateTerms(
            kind="threshold", amount_off=2000, min_spend=9900, valid_days=14)),
        (None, "口令券 满30减5", f"输入口令 {DEMO_CODE} 领取", 1_000, TemplateTerms(
            kind="threshold", amount_off=500, min_spend=3000, valid_days=7,
            claim_method="code", code=DEMO_CODE)),
    ]
    if staples is not None:
        offers.append((None, "主粮85折 最高减30", "猫粮、狗粮通用", 2_000, TemplateTerms(
            kind="percent", percent_off=15, max_discount=3000, scope="category",
            category_id=staples, valid_days=14)))
    if shop_id is not None:
        offers.append((shop_id, "萌宠小铺 满59减8", "本店商品可用", 500, TemplateTerms(
            kind="threshold", amount_off=800, min_spend=5900, scope="merchant",
            merchant_id=shop_id, valid_from=today,
            valid_to=today + dt.timedelta(days=60))))
    for issuer, name, description, quantity, wanted in offers:
        template = CouponTemplate(merchant_id=issuer, created_by=issuer or admin_id, name=name,
                                  description=description, total_quantity=quantity,
                                  per_user_limit=1, status="active")
        terms.apply_terms(template, wanted)
        session.add(template)
    await session.flush()
    return len(offers)
