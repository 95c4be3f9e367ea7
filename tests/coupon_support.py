"""Shared set-up of the coupon tests: templates made through the issuers' endpoint, claims,
and the coupon rows as stored."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models.coupons import CouponEvent, CouponTemplate, UserCoupon


def terms(**fields: Any) -> dict[str, Any]:
    """满 50 减 10, valid 7 days after claiming, 100 of them, one per person."""
    body = {"name": "满50减10", "kind": "threshold", "amount_off": 1000, "min_spend": 5000,
            "valid_days": 7, "total_quantity": 100}
    body.update(fields)
    return body


async def make_template(api, issuer, **fields: Any) -> dict[str, Any]:
    return (await api.post("/v1/merchant/coupon-templates", token=issuer.token,
                           json=terms(**fields))).ok(201)


async def claim(api, user, template_id: int, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else None
    return await api.post(f"/v1/coupons/{template_id}/claim", token=user.token,
                          headers=headers)


async def coupon_row(resources, coupon_id: int) -> UserCoupon:
    async with resources.db.session() as session:
        return (await session.execute(select(UserCoupon).where(
            UserCoupon.id == coupon_id))).scalar_one()


async def template_row(resources, template_id: int) -> CouponTemplate:
    async with resources.db.session() as session:
        return (await session.execute(select(CouponTemplate).where(
            CouponTemplate.id == template_id))).scalar_one()


async def trail(resources, coupon_id: int) -> list[tuple[str, str, str]]:
    async with resources.db.session() as session:
        rows = (await session.execute(select(CouponEvent).where(
            CouponEvent.user_coupon_id == coupon_id).order_by(CouponEvent.id))).scalars()
        return [(e.action, e.from_status, e.to_status) for e in rows]
