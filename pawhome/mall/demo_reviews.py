"""A completed demo order with a published review and the shop's reply, for `make run`: the
first demo buyer bought the first demo shop's first product, received it and reviewed it, so
the product page shows a rating and GET /v1/products/{id}/reviews has something to list.
Written straight into the tables (it is our data: no payment, no moderation), the rating
through `reviews.set_status` like any published review. Idempotent.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.mall import Order, OrderEvent, OrderItem, Product, Sku
from models.reviews import ProductReview
from pawhome.mall import orders, reviews

ADDRESS = {"contact_name": "豆豆妈", "phone": "13800138000", "province": "浙江省",
           "city": "杭州市", "district": "西湖区", "community": "翠苑一区",
           "detail": "3 幢 2 单元 501"}


async def seed_demo_review(session: AsyncSession, buyer_id: int, shop_id: int) -> int:
    """Rows created (0 when the buyer has a review already, or the shop sells nothing)."""
    if (await session.execute(select(ProductReview.id).where(
            ProductReview.user_id == buyer_id).limit(1))).first() is not None:
        return 0
    product = (await session.execute(select(Product).where(
        Product.merchant_id == shop_id, Product.status == "on_sale",
        Product.deleted_at.is_(None)).order_by(Product.id).limit(1))).scalar_one_or_none()
    if product is None:
        return 0
    sku = (await session.execute(select(Sku).where(Sku.product_id == product.id,
                                                   Sku.deleted_at.is_(None))
                                 .order_by(Sku.id).limit(1))).scalar_one()
    now = utcnow()
    placed = now - dt.timedelta(days=6)
    order = Order(order_no=orders.new_order_no(placed), user_id=buyer_id, merchant_id=shop_id,
                  status="completed", fulfilment="express", address=ADDRESS,
                  goods_amount=sku.price, delivery_fee=0, payable_amount=sku.price,
                  paid_amount=sku.price,
                  price_breakdown=[{"kind": "goods", "code": "goods", "label": "商品金额",
                                    "amount": sku.price}],
                  carrier="SF", tracking_no="SF1000000001", pay_deadline=placed,
                  paid_at=placed, shipped_at=placed + dt.timedelta(days=1),
                  completed_at=now - dt.timedelta(days=3), created_at=placed)
    session.add(order)
    await session.flush()
    item = OrderItem(order_id=order.id, product_id=product.id, sku_id=sku.id,
                     name=product.name, spec_text=sku.spec_text, unit_price=sku.price,
                     quantity=1, line_total=sku.price)
    session.add(item)
    for action, before, after in (("place", "", "pending_payment"),
                                  ("pay", "pending_payment", "paid"),
                                  ("ship", "paid", "shipped"),
                                  ("confirm_receipt", "shipped", "completed")):
        session.add(OrderEvent(order_id=order.id, from_status=before, to_status=after,
                               action=action, actor_type="system", reason="demo data"))
    await session.flush()
    review = ProductReview(order_item_id=item.id, order_id=order.id, product_id=product.id,
                           sku_id=sku.id, merchant_id=shop_id, user_id=buyer_id,
                           spec_text=sku.spec_text, rating=5,
                           text="Mochi 挑食也爱吃，颗粒大小合适，物流也快，回购！", media_ids=[],
                           has_images=False, anonymous=False, status="pending",
                           reply_text="谢谢支持，Mochi 吃得开心就好 🐱",
                           reply_by=shop_id, replied_at=now)
    session.add(review)
    await session.flush()
    await reviews.set_status(session, review, "visible")
    return 3
