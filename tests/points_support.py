"""Shared set-up of the points tests: points given through the ledger (as any domain would),
the truth of a balance recounted from the ledger, and the rules put back to their defaults
(they are one row, shared by every test of the run)."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from models.points import PointsAccount, PointsEntry, PointsRules
from pawhome.points import ledger


async def give_points(resources: Any, user_id: int, points: int,
                      reason: str = "activity") -> int:
    """Credit `points` (a fresh key); returns the balance after."""
    async with resources.db.session() as session, session.begin():
        moved = await ledger.change(session, user_id, points, reason=reason,
                                    key="test:" + uuid.uuid4().hex)
    return moved.balance_after


async def balance_and_ledger(resources: Any, user_id: int) -> tuple[int, int, int]:
    """(balance row, sum of the ledger, count of ledger rows) as committed now."""
    async with resources.db.session() as session:
        balance = (await session.execute(select(PointsAccount.balance).where(
            PointsAccount.user_id == user_id))).scalar_one_or_none()
        total, count = (await session.execute(select(
            func.coalesce(func.sum(PointsEntry.delta), 0), func.count())
            .where(PointsEntry.user_id == user_id))).one()
    return int(balance or 0), int(total), int(count)


async def assert_balance_matches_ledger(resources: Any, user_id: int) -> int:
    """The balance equals the ledger's sum and its last balance_after, and is not negative."""
    balance, total, _ = await balance_and_ledger(resources, user_id)
    async with resources.db.session() as session:
        last = (await session.execute(select(PointsEntry.balance_after)
                                      .where(PointsEntry.user_id == user_id)
                                      .order_by(PointsEntry.id.desc()).limit(1))
                ).scalar_one_or_none()
    assert balance == total == (last if last is not None else 0), (user_id, balance, total, last)
    assert balance >= 0
    return balance


@pytest.fixture
def default_rules(resources, io_loop):
    """The points rules at their defaults for the test, and again after it."""

    async def reset() -> None:
        async with resources.db.session() as session, session.begin():
            await session.execute(delete(PointsRules))
        await resources.cache.redis.delete(resources.cache.key("points", "rules"))

    io_loop.run_sync(reset)
    yield
    io_loop.run_sync(reset)


async def make_points_product(resources: Any, merchant_id: int, *, price: int,
                              points_price: int, stock: int = 100, kind: str = "physical",
                              name: str = "积分好礼") -> tuple[int, int]:
    """A product on sale with one SKU carrying a points price (price 0: points only);
    stock -1 is unlimited, other stock goes through the stock ledger. (product id, SKU id)."""
    from models.mall import Product, Sku
    from pawhome.mall import stock as mall_stock

    async with resources.db.session() as session, session.begin():
        product = Product(merchant_id=merchant_id, kind=kind, name=name, description="积分兑换",
                          spec_attrs=[], status="on_sale", price_min=price, price_max=price,
                          media_ids=[], tags=[], pet_types=[])
        session.add(product)
        await session.flush()
        sku = Sku(product_id=product.id, spec_values=[], spec_key="", spec_text="",
                  price=price, original_price=0, points_price=points_price,
                  stock=-1 if stock == -1 else 0)
        session.add(sku)
        await session.flush()
        if stock > 0:
            await mall_stock.adjust(session, sku.id, stock, actor_id=merchant_id,
                                    note="initial", reason="initial")
        return product.id, sku.id
