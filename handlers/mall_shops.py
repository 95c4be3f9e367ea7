"""Shop endpoints: a merchant's own shop profile and delivery set-up under /v1/merchant/...,
and a shop as buyers see it under /v1/merchants/{merchant_id}.

Thin: each calls one function of pawhome/mall/merchants.py or pawhome/mall/delivery.py;
docs/mall.md.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import delivery, merchants
from pawhome.platform.errors import ValidationFailed
from pawhome.platform.fields import MAX_ID

SHOP = ("shops",)
MERCHANT = ("merchant",)


class OptionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    address_id: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="one of the caller's addresses; left out: "
                                               "their default address")
    goods_amount: int = Field(0, ge=0, le=delivery.MAX_AMOUNT,
                              description="the goods total (fen) the fees are for")


class MyShopHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, response=merchants.ShopView,
              summary="The merchant's own shop profile")
    async def get(self) -> None:
        self.ok(await merchants.get_shop(self.r, self.user_id))

    @endpoint(roles=MERCHANT, tags=SHOP, body=merchants.ShopFields,
              response=merchants.ShopView, refuses=merchants.SHOP_RULES,
              summary="Change the shop's name, intro or logo (only the fields sent)")
    async def patch(self) -> None:
        self.ok(await merchants.update_shop(self.r, self.user_id, self.body))


class MyDeliveryHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, response=delivery.SetupView,
              summary="The shop's delivery set-up: express, local delivery, pick-up")
    async def get(self) -> None:
        self.ok(await delivery.get_setup(self.r, self.user_id))

    @endpoint(roles=MERCHANT, tags=SHOP, body=delivery.DeliverySetup,
              response=delivery.SetupView, refuses=delivery.SETUP_RULES,
              summary="Set express, local delivery or pick-up (each section sent replaces "
                      "that section)")
    async def put(self) -> None:
        self.ok(await delivery.put_setup(self.r, self.user_id, self.body))


class MyAreasHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, response=delivery.AreaList,
              summary="The shop's local delivery areas")
    async def get(self) -> None:
        self.ok(await delivery.list_areas(self.r, self.user_id))

    @endpoint(roles=MERCHANT, tags=SHOP, body=delivery.AreaCreate, status=201,
              response=delivery.AreaView, links={"area_id": "/id"},
              errors=(ValidationFailed,), refuses=delivery.COUNT_RULE,
              summary="Add a local delivery area (a district, or some of its communities)")
    async def post(self) -> None:
        self.ok(await delivery.create_area(self.r, self.user_id, self.body), status=201)


class MyAreaHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, body=delivery.AreaFields,
              response=delivery.AreaView,
              summary="Change a delivery area (only the fields sent)")
    async def patch(self, area_id: int) -> None:
        self.ok(await delivery.update_area(self.r, self.user_id, area_id, self.body))

    @endpoint(roles=MERCHANT, tags=SHOP, response=delivery.Deleted,
              summary="Delete a delivery area")
    async def delete(self, area_id: int) -> None:
        self.ok(await delivery.delete_area(self.r, self.user_id, area_id))


class MyPointsHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, response=delivery.PointList,
              summary="The shop's pick-up points")
    async def get(self) -> None:
        self.ok(await delivery.list_points(self.r, self.user_id))

    @endpoint(roles=MERCHANT, tags=SHOP, body=delivery.PointCreate, status=201,
              response=delivery.PointView, links={"point_id": "/id"},
              errors=(ValidationFailed,), refuses=delivery.COUNT_RULE,
              summary="Add a pick-up point")
    async def post(self) -> None:
        self.ok(await delivery.create_point(self.r, self.user_id, self.body), status=201)


class MyPointHandler(ApiHandler):
    @endpoint(roles=MERCHANT, tags=SHOP, body=delivery.PointFields,
              response=delivery.PointView,
              summary="Change a pick-up point (only the fields sent)")
    async def patch(self, point_id: int) -> None:
        self.ok(await delivery.update_point(self.r, self.user_id, point_id, self.body))

    @endpoint(roles=MERCHANT, tags=SHOP, response=delivery.Deleted,
              summary="Delete a pick-up point (orders keep their own copy)")
    async def delete(self, point_id: int) -> None:
        self.ok(await delivery.delete_point(self.r, self.user_id, point_id))


class ShopHandler(ApiHandler):
    @endpoint(auth=False, tags=SHOP, response=delivery.ShopPage,
              summary="A shop as buyers see it: profile, delivery offered, pick-up points")
    async def get(self, merchant_id: int) -> None:
        self.ok(await delivery.shop_page(self.r, merchant_id))


class ShopDeliveryOptionsHandler(ApiHandler):
    @endpoint(tags=SHOP, query=OptionsQuery, response=delivery.OptionsView,
              summary="What checkout would offer the caller for this shop: each delivery "
                      "mode, whether it serves the address, and its fee")
    async def get(self, merchant_id: int) -> None:
        self.ok(await delivery.delivery_options(self.r, self.user_id, merchant_id,
                                                self.query.address_id,
                                                self.query.goods_amount))
