"""A demo group-buy for `make run`: a rule on a product of the first demo shop (groups of 3
at 80 % of the price, 24 h to fill) and an open group the second demo buyer opened and paid
for, waiting for two more — so the product's page offers a group to join, the home's
group-buy slot shows the product, and a newcomer can join and pay (the simulated WeChat Pay).
Written straight into the tables (it is our data), the opener's payment as a simulated one
so that, should the group expire unfilled, the refund goes through the payments flow like
any other. Idempotent: nothing is added once any group-buy rule exists.
docs/promotions.md ("Group-buy").
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.groupbuy import GroupBuy, GroupBuyEvent, GroupBuyMember, GroupBuyRule
from models.mall import Order, OrderEvent, OrderItem, Product, Sku
from models.payments import Payment
from pawhome.mall import orders, stock

GROUP_SIZE = 3
TIME_LIMIT_MINUTES = 1440
ADDRESS = {"contact_name": "Mochi's human", "phone": "13800138001", "province": "浙江省",
           "city": "杭州市", "district": "西湖区", "community": "翠苑一区",
           "detail": "5 幢 1 单元 302"}


async def seed_demo_group_buy(session: AsyncSession, buyer_id: int, shop_id: int) -> int:
    """Rows created (0 when a rule exists already, or the shop sells no physical product
    with stock)."""
    if (await session.execute(select(func.count(GroupBuyRule.id)))).scalar_one():
        return 0
    found = (await session.execute(
        select(Product, Sku).join(Sku, Sku.product_id == Product.id).where(
            Product.merchant_id == shop_id, Product.status == "on_sale",
            Product.kind == "physical", Product.deleted_at.is_(None),
            Sku.deleted_at.is_(None), Sku.stock > 10)
        .order_by(Product.id.desc(), Sku.id).limit(1))).first()
    if found is None:
        return 0
    product, sku = found
    now = utcnow()
    rule = GroupBuyRule(sku_id=sku.id, product_id=product.id, merchant_id=shop_id,
                        group_size=GROUP_SIZE, group_price=sku.price * 80 // 100,
                        time_limit_minutes=TIME_LIMIT_MINUTES, limit_per_user=2,
                        status="active", created_by=shop_id, created_at=now, updated_at=now)
    session.add(rule)
    await session.flush()

    paid_at = now - dt.timedelta(minutes=20)
    saving = sku.price - rule.group_price
    order = Order(order_no=orders.new_order_no(paid_at), user_id=buyer_id,
                  merchant_id=shop_id, status="paid_waiting_group", fulfilment="express",
                  address=ADDRESS, goods_amount=sku.price, delivery_fee=0,
                  discount_amount=saving, payable_amount=rule.group_price,
                  paid_amount=rule.group_price,
                  price_breakdown=[
                      {"kind": "goods", "code": "goods", "label": "商品金额", "amount": sku.price},
                      {"kind": "delivery", "code": "delivery", "label": "运费", "amount": 0},
                      {"kind": "discount", "code": "group_buy",
                       "label": f"拼团价 {GROUP_SIZE}人团", "amount": -saving}],
                  pay_deadline=paid_at, paid_at=paid_at, created_at=paid_at, updated_at=paid_at)
    session.add(order)
    await session.flush()
    session.add(OrderItem(order_id=order.id, product_id=product.id, sku_id=sku.id,
                          name=product.name, spec_text=sku.spec_text, unit_price=sku.price,
                          quantity=1, line_total=sku.price, discount_share=saving))
    for action, before, after in (("place", "", "pending_payment"),
                                  ("pay", "pending_payment", "paid"),
                                  ("wait_for_group", "paid", "paid_waiting_group")):
        session.add(OrderEvent(order_id=order.id, from_status=before, to_status=after,
                               action=action, actor_type="system", reason="demo data",
                               created_at=paid_at))
    await stock.take(session, [stock.StockMove(sku.id, 1)], reason="order_placed",
                     ref_type="order", ref_id=order.id, actor_id=buyer_id)
    session.add(Payment(out_trade_no=order.order_no, payable_type=orders.PAYABLE_TYPE,
                        payable_id=order.id, user_id=buyer_id, channel="simulated",
                        amount=rule.group_price, description=f"PAWHome 订单 {order.order_no}",
                        status="paid", trade_state="SUCCESS", time_expire=paid_at,
                        transaction_id=f"DEMO{order.order_no}", paid_amount=rule.group_price,
                        paid_at=paid_at, created_at=paid_at, updated_at=paid_at))

    group = GroupBuy(rule_id=rule.id, sku_id=sku.id, product_id=product.id,
                     merchant_id=shop_id, opener_id=buyer_id, size=GROUP_SIZE,
                     group_price=rule.group_price, time_limit_minutes=TIME_LIMIT_MINUTES,
                     status="open", seats_taken=1, paid_count=1,
                     expires_at=paid_at + dt.timedelta(minutes=TIME_LIMIT_MINUTES),
                     opened_at=paid_at, created_at=paid_at, updated_at=paid_at)
    session.add(group)
    await session.flush()
    member = GroupBuyMember(group_id=group.id, rule_id=rule.id, user_id=buyer_id,
                            order_id=order.id, quantity=1, is_opener=True, status="paid",
                            joined_at=paid_at, paid_at=paid_at, updated_at=paid_at)
    session.add(member)
    await session.flush()
    for action, before, after in (("member_join", "", "pending"),
                                  ("member_pay", "pending", "paid"), ("open", "opening", "open")):
        session.add(GroupBuyEvent(group_id=group.id, action=action, from_status=before,
                                  to_status=after, member_id=member.id, order_id=order.id,
                                  created_at=paid_at))
    return 5
