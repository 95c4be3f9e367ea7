"""Shared set-up of the mall tests: buyers, merchants with a shop and delivery set-up,
products on sale with SKUs, addresses, cart lines — written straight into the database (the
catalogue's own endpoints are tested in their own files), and the truth of stock recounted
from the ledger."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update

from models.mall import (
    Address,
    CartItem,
    Category,
    Merchant,
    PickupPoint,
    Product,
    Sku,
    StockMovement,
)
from models.users import User
from pawhome.identity import tokens
from pawhome.mall import stock
from tests.helpers import Session
from tests.interactions_support import make_user


async def make_member(resources: Any, role: str = "user", nickname: str = "") -> Session:
    """A user of `role` with an access token carrying it."""
    person = await make_user(resources, nickname)
    if role != "user":
        async with resources.db.session() as session, session.begin():
            await session.execute(update(User).where(User.id == person.user_id)
                                  .values(role=role))
        token, _ = tokens.issue_access_token(resources.settings, person.user_id, role,
                                             uuid.uuid4().hex)
        person = Session(person.user_id, token, "", person.openid)
    return person


async def make_shop(resources: Any, name: str = "", *, express_fee: int = 800,
                    free_over: int | None = 9900, pickup: bool = True,
                    regions: list[dict[str, Any]] | None = None) -> tuple[Session, int | None]:
    """A merchant with a shop that ships by express (fee, free over an amount) and, with
    `pickup`, one pick-up point. Returns (merchant session, pick-up point id)."""
    merchant = await make_member(resources, "merchant", name or "店" + uuid.uuid4().hex[:4])
    async with resources.db.session() as session, session.begin():
        session.add(Merchant(user_id=merchant.user_id, name=name or f"店铺{merchant.user_id}",
                             express_enabled=True, express_base_fee=express_fee,
                             express_free_over=free_over, express_regions=regions or [],
                             local_windows=[], pickup_enabled=pickup))
        await session.flush()
        point_id = None
        if pickup:
            point = PickupPoint(merchant_id=merchant.user_id, name="门店自提点",
                                province="广东省", city="深圳市", district="南山区",
                                detail="科技园一路 1 号", phone="13800138000",
                                hours="09:00-21:00")
            session.add(point)
            await session.flush()
            point_id = point.id
    return merchant, point_id


async def make_category(resources: Any, name: str = "猫粮",
                        parent_id: int | None = None) -> int:
    async with resources.db.session() as session, session.begin():
        category = Category(name=name, parent_id=parent_id)
        session.add(category)
        await session.flush()
        return category.id


async def make_product(resources: Any, merchant_id: int, skus: list[dict[str, Any]] | None = None,
                       *, name: str = "鸡肉冻干猫粮", status: str = "on_sale",
                       category_id: int | None = None) -> tuple[int, list[int]]:
    """A product with SKUs (default: one SKU at 59.00 with 100 in stock), its stock written
    through the stock ledger like a merchant's. Returns (product id, SKU ids)."""
    skus = skus or [{"price": 5900, "stock": 100}]
    async with resources.db.session() as session, session.begin():
        product = Product(merchant_id=merchant_id, category_id=category_id, name=name,
                          description="好吃", spec_attrs=[{"name": "规格",
                                                         "values": [str(i) for i in
                                                                    range(len(skus))]}],
                          status=status, price_min=min(s["price"] for s in skus),
                          price_max=max(s["price"] for s in skus), media_ids=[], tags=[],
                          pet_types=["cat"])
        session.add(product)
        await session.flush()
        ids = []
        for index, spec in enumerate(skus):
            sku = Sku(product_id=product.id, spec_values=[str(index)], spec_key=str(index),
                      spec_text=f"规格:{index}", price=spec["price"],
                      original_price=spec.get("original_price", spec["price"]), stock=0,
                      purchase_limit=spec.get("purchase_limit", 0))
            session.add(sku)
            await session.flush()
            if spec.get("stock"):
                await stock.adjust(session, sku.id, int(spec["stock"]), actor_id=merchant_id,
                                   note="initial", reason="initial")
            ids.append(sku.id)
        return product.id, ids


async def make_address(resources: Any, user_id: int, *, province: str = "广东省",
                       city: str = "深圳市", district: str = "南山区") -> int:
    async with resources.db.session() as session, session.begin():
        address = Address(user_id=user_id, contact_name="张三", phone="13912345678",
                          province=province, city=city, district=district,
                          detail="科技园南路 88 号", is_default=True)
        session.add(address)
        await session.flush()
        return address.id


async def put_in_cart(resources: Any, user_id: int, sku_id: int, quantity: int,
                      selected: bool = True) -> None:
    async with resources.db.session() as session, session.begin():
        price = (await session.execute(select(Sku.price).where(Sku.id == sku_id))).scalar_one()
        session.add(CartItem(user_id=user_id, sku_id=sku_id, quantity=quantity,
                             selected=selected, price_when_added=price))


async def stock_of(resources: Any, sku_id: int) -> int:
    async with resources.db.session() as session:
        return int((await session.execute(select(Sku.stock).where(Sku.id == sku_id)))
                   .scalar_one())


async def assert_stock_matches_ledger(resources: Any, *sku_ids: int) -> None:
    """Every SKU's stock equals the sum of its ledger, and the ledger's last balance."""
    async with resources.db.session() as session:
        for sku_id in sku_ids:
            current = int((await session.execute(select(Sku.stock).where(Sku.id == sku_id)))
                          .scalar_one())
            total = int((await session.execute(select(func.coalesce(func.sum(
                StockMovement.delta), 0)).where(StockMovement.sku_id == sku_id))).scalar_one())
            last = (await session.execute(select(StockMovement.stock_after)
                                          .where(StockMovement.sku_id == sku_id)
                                          .order_by(StockMovement.id.desc()).limit(1))
                    ).scalar_one_or_none()
            assert current == total == (last if last is not None else 0), \
                (sku_id, current, total, last)
            assert current >= 0
