"""Order endpoints: checkout preview and placing orders, the buyer's orders (list with
badge counts, detail with timeline, cancel, confirm receipt, pay), the merchant's orders
(list, ship, ready for pick-up, pick-up, daily sales) and the admin's search and force-cancel.

Thin: each calls one function of pawhome/mall/ (checkout, orders, order_views,
order_payments); docs/mall.md.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import checkout, order_payments, order_views, orders
from pawhome.platform.errors import (
    Conflict,
    CouponTaken,
    GroupAlreadyJoined,
    GroupBuyInvalid,
    GroupBuyLimitReached,
    GroupBuyUnavailable,
    GroupClosed,
    GroupFull,
    NotFound,
    NotPurchasable,
    OrderStateConflict,
    OutOfStock,
    ValidationFailed,
)
from pawhome.platform.fields import NOT_BLANK

TAGS = ("orders",)
MERCHANT_TAGS = ("merchant",)
ADMIN = ("admin",)
SELLERS = ("merchant", "admin")


class OptionalReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=255)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class ShipBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    carrier: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    tracking_no: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


class PickUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pickup_code: str = Field(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")


class SellerHandler(ApiHandler):
    @property
    def merchant_scope(self) -> int | None:
        """A merchant acts on its own orders; an admin on every merchant's (None)."""
        return None if self.caller.role == "admin" else self.user_id


# What a checkout's points and coupons are refused for beyond the schema (the balance, the
# points mall, the wallet), declared alike on the preview and the order.
POINTS_AND_COUPON_REFUSALS = {
    "coupon_ids": "the caller's unused, valid coupons, each fitting a different shop's order "
                  "and its threshold",
    "points": "at most the caller's balance",
    "redeem_sku_ids": "SKUs of this checkout with a points price, within the caller's balance",
    "group_buy": "a SKU with an active group-buy rule, bought alone (items: that one SKU), "
                 "within the per-buyer limit; group_id: an open group with a free seat, not "
                 "the caller's",
}
# A group-buy checkout's refusals (docs/promotions.md "Group-buy").
GROUP_BUY_ERRORS = (GroupFull, GroupClosed, GroupAlreadyJoined, GroupBuyLimitReached,
                    GroupBuyUnavailable, GroupBuyInvalid)


class CheckoutPreviewHandler(ApiHandler):
    @endpoint(body=checkout.CheckoutBody, tags=TAGS,
              errors=(ValidationFailed, NotFound, *GROUP_BUY_ERRORS),
              summary="Price a checkout (cart selection or buy-now) without ordering",
              refuses={"address_id": "one of the caller's addresses",
                       "items": "on-sale SKUs of active shops; without items, a cart with "
                                "selected lines",
                       "shipments": "one per merchant of the checkout, a mode it offers",
                       **POINTS_AND_COUPON_REFUSALS})
    async def post(self) -> None:
        self.ok(await checkout.preview(self.r, self.user_id, self.body))


class OrdersHandler(ApiHandler):
    @endpoint(query=order_views.OrderListQuery, tags=TAGS,
              summary="The caller's orders, newest first, with counts per status")
    async def get(self) -> None:
        self.ok(await order_views.list_my_orders(self.r, self.user_id, self.query))

    @endpoint(body=checkout.CheckoutBody, tags=TAGS, idempotent=True, status=201,
              errors=(NotPurchasable, OutOfStock, CouponTaken, ValidationFailed, NotFound,
                      *GROUP_BUY_ERRORS),
              summary="Place the orders of a checkout (one per merchant), stock reserved",
              refuses={"address_id": "one of the caller's addresses",
                       "items": "on-sale SKUs of active shops, within stock and limits; "
                                "without items, a cart with selected lines",
                       "shipments": "one per merchant of the checkout, a mode it offers",
                       **POINTS_AND_COUPON_REFUSALS})
    async def post(self) -> None:
        key = self.request.headers.get("Idempotency-Key", "")[:64]
        self.ok(await orders.place_orders(self.r, self.user_id, self.body, key), status=201)


class OrderHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="One of the caller's orders, with its timeline")
    async def get(self, order_id: int) -> None:
        self.ok(await order_views.get_order(self.r, order_id, buyer_id=self.user_id))


class OrderCancelHandler(ApiHandler):
    @endpoint(body=OptionalReasonBody, tags=TAGS, errors=(OrderStateConflict,),
              summary="Cancel one of the caller's unpaid orders (its stock goes back)")
    async def post(self, order_id: int) -> None:
        self.ok(await orders.cancel_order(self.r, order_id, actor_type="buyer",
                                          actor_id=self.user_id, buyer_id=self.user_id,
                                          reason=self.body.reason or "cancelled by the buyer"))


class OrderConfirmReceiptHandler(ApiHandler):
    @endpoint(tags=TAGS, errors=(OrderStateConflict,),
              summary="Confirm a shipped order was received (it completes)")
    async def post(self, order_id: int) -> None:
        self.ok(await orders.confirm_receipt(self.r, self.user_id, order_id))


class OrderPayHandler(ApiHandler):
    @endpoint(tags=TAGS, errors=(OrderStateConflict, Conflict, ValidationFailed),
              summary="Start paying an order with WeChat Pay: wx.requestPayment parameters",
              refuses={"order_id": "an unpaid order of the caller, before its deadline"})
    async def post(self, order_id: int) -> None:
        self.ok(await order_payments.pay_order(self.r, self.user_id, order_id))


# -- merchants ------------------------------------------------------------------------------------


class MerchantOrdersHandler(SellerHandler):
    @endpoint(roles=SELLERS, query=order_views.OrderListQuery, tags=MERCHANT_TAGS,
              summary="The merchant's orders by status, newest first, with counts")
    async def get(self) -> None:
        self.ok(await order_views.list_merchant_orders(self.r, self.merchant_scope, self.query))


class MerchantOrderHandler(SellerHandler):
    @endpoint(roles=SELLERS, tags=MERCHANT_TAGS, summary="One of the merchant's orders")
    async def get(self, order_id: int) -> None:
        scope = self.merchant_scope
        self.ok(await order_views.get_order(self.r, order_id, merchant_id=scope,
                                            admin=scope is None))


class MerchantShipHandler(SellerHandler):
    @endpoint(roles=SELLERS, body=ShipBody, tags=MERCHANT_TAGS,
              errors=(OrderStateConflict, ValidationFailed),
              summary="Ship a paid order (carrier and tracking number)",
              refuses={"order_id": "a paid express or local-delivery order of the merchant"})
    async def post(self, order_id: int) -> None:
        self.ok(await orders.ship(self.r, order_id, merchant_id=self.merchant_scope,
                                  actor_id=self.user_id, actor_role=self.caller.role,
                                  carrier=self.body.carrier, tracking_no=self.body.tracking_no))


class MerchantReadyForPickupHandler(SellerHandler):
    @endpoint(roles=SELLERS, tags=MERCHANT_TAGS, errors=(OrderStateConflict, ValidationFailed),
              summary="Mark a paid pick-up order ready to collect (the buyer is told)",
              refuses={"order_id": "a paid pick-up order of the merchant"})
    async def post(self, order_id: int) -> None:
        self.ok(await orders.ready_for_pickup(self.r, order_id, merchant_id=self.merchant_scope,
                                              actor_id=self.user_id,
                                              actor_role=self.caller.role))


class MerchantPickUpHandler(SellerHandler):
    @endpoint(roles=SELLERS, body=PickUpBody, tags=MERCHANT_TAGS,
              errors=(OrderStateConflict, ValidationFailed),
              summary="Confirm the buyer collected a pick-up order (with their pick-up code)",
              refuses={"pickup_code": "the order's pick-up code"})
    async def post(self, order_id: int) -> None:
        self.ok(await orders.pick_up(self.r, order_id, merchant_id=self.merchant_scope,
                                     actor_id=self.user_id, actor_role=self.caller.role,
                                     pickup_code=self.body.pickup_code))


class MerchantSalesHandler(SellerHandler):
    @endpoint(roles=SELLERS, query=order_views.SalesQuery, tags=MERCHANT_TAGS,
              errors=(ValidationFailed,),
              summary="Sales per day (Asia/Shanghai): paid orders, paid and refunded fen",
              refuses={"date_to": f"on or after date_from, at most "
                                  f"{order_views.SALES_MAX_DAYS} days"})
    async def get(self) -> None:
        self.ok(await order_views.sales_by_day(self.r, self.merchant_scope, self.query))


# -- admins -------------------------------------------------------------------------------------


class AdminOrdersHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=order_views.AdminOrderQuery, tags=("admin",),
              summary="Search orders by number, buyer, merchant, status and date")
    async def get(self) -> None:
        self.ok(await order_views.admin_search(self.r, self.query))


class AdminOrderHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), summary="Any order, with its timeline")
    async def get(self, order_id: int) -> None:
        self.ok(await order_views.get_order(self.r, order_id, admin=True))
