"""The merchant's catalogue (products, SKUs, stock, putting on and off sale) and the admins'
(categories, any product off sale, product review decisions, the audit log).

Thin: each calls one function of pawhome/mall/products.py, categories.py,
pawhome/moderation/product_reviews.py or pawhome/platform/audit.py; docs/mall.md.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import categories, products
from pawhome.mall.product_forms import (
    PRODUCT_RULES,
    SKU_RULES,
    Kind,
    ProductBody,
    ProductPatch,
    SkuSetBody,
    StockAdjustmentBody,
)
from pawhome.moderation import product_reviews
from pawhome.platform import audit
from pawhome.platform.errors import Conflict, SensitiveContent
from pawhome.platform.fields import NOT_BLANK, Id
from pawhome.platform.pagination import PageQuery

SELLERS = ("merchant", "admin")
ADMIN = ("admin",)
TAGS = ("mall",)
ADMIN_TAGS = ("admin", "mall")
READY_RULES = {"media_ids": "at least one image to go on sale",
               "category_id": "an enabled category to go on sale",
               "skus": "at least one SKU to go on sale"}


class MerchantProductsQuery(PageQuery):
    status: Literal["draft", "reviewing", "on_sale", "off_sale", "rejected"] | None = None
    merchant_id: Id | None = Field(None, description="admins: one merchant's products")
    kind: Kind | None = Field(None, description="one kind only (a virtual kind: the points "
                                                "mall's virtual items)")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class AuditLogQuery(PageQuery):
    actor_id: Id | None = None
    action: str | None = Field(None, max_length=64,
                               description='exact ("product.update") or a prefix ending in '
                                           '"." ("product.")')
    target_type: str | None = Field(None, max_length=32)
    target_id: str | None = Field(None, max_length=64)


def _actor(handler: ApiHandler) -> products.Actor:
    return products.Actor(handler.user_id, handler.caller.role)


# -- products ----------------------------------------------------------------------------------


class MerchantProductsHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=MerchantProductsQuery, tags=TAGS,
              links={"product_id": "/items/0/id"},
              summary="The caller's products in any status (admins: everyone's)")
    async def get(self) -> None:
        q = self.query
        self.ok(await products.list_products(self.r, _actor(self), q, q.status, q.merchant_id,
                                             q.kind))

    @endpoint(roles=("merchant",), body=ProductBody, tags=TAGS, status=201,
              links={"product_id": "/id"}, refuses=PRODUCT_RULES,
              errors=(SensitiveContent,),
              summary="Add a product, as a draft (SKUs: PUT .../skus; on sale: .../on-sale)")
    async def post(self) -> None:
        self.ok(await products.create_product(self.r, _actor(self), self.body), status=201)


class MerchantProductHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=TAGS, summary="One of the caller's products, any status")
    async def get(self, product_id: int) -> None:
        self.ok(await products.get_product(self.r, _actor(self), product_id))

    @endpoint(roles=SELLERS, body=ProductPatch, tags=TAGS, errors=(SensitiveContent,),
              refuses={**PRODUCT_RULES,
                       "media_ids": PRODUCT_RULES["media_ids"] + "; not empty while on sale",
                       "category_id": PRODUCT_RULES["category_id"] + "; not null while on "
                                                                      "sale"},
              summary="Change a product; new text or images send one on sale back to review")
    async def patch(self, product_id: int) -> None:
        self.ok(await products.update_product(self.r, _actor(self), product_id, self.body))

    @endpoint(roles=SELLERS, tags=TAGS,
              summary="Delete a product (its SKUs stay for orders and carts, no longer sold)")
    async def delete(self, product_id: int) -> None:
        self.ok(await products.delete_product(self.r, _actor(self), product_id))


class MerchantSkusHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=SkuSetBody, tags=TAGS, refuses=SKU_RULES,
              errors=(SensitiveContent,),
              summary="Replace a product's spec attributes and SKU set (prices in fen)")
    async def put(self, product_id: int) -> None:
        self.ok(await products.put_skus(self.r, _actor(self), product_id, self.body))


class MerchantOnSaleHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=TAGS, errors=(Conflict,),
              description="409 naming what is missing: " + "; ".join(
                  f"{k}: {v}" for k, v in READY_RULES.items()),
              summary="Put a product on sale: it is reviewed first (status reviewing)")
    async def post(self, product_id: int) -> None:
        self.ok(await products.submit_product(self.r, _actor(self), product_id))


class MerchantOffSaleHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=TAGS, errors=(Conflict,),
              summary="Take a product off sale (or out of review)")
    async def post(self, product_id: int) -> None:
        self.ok(await products.take_off_sale(self.r, _actor(self), product_id))


class StockAdjustmentsHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=StockAdjustmentBody, tags=TAGS, idempotent=True,
              status=201, errors=(Conflict,), refuses={"delta": "not 0"},
              summary="Adjust a SKU's stock with a reason (409 with the stock if it would "
                      "go below zero)")
    async def post(self, sku_id: int) -> None:
        self.ok(await products.adjust_stock(self.r, _actor(self), sku_id, self.body),
                status=201)


class StockMovementsHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=PageQuery, tags=TAGS,
              summary="A SKU's stock ledger, newest first")
    async def get(self, sku_id: int) -> None:
        self.ok(await products.list_stock_movements(self.r, _actor(self), sku_id, self.query))


# -- admin -------------------------------------------------------------------------------------


class AdminCategoriesHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS,
              summary="Every category, disabled ones included, as a tree")
    async def get(self) -> None:
        self.ok(await categories.admin_tree(self.r))

    @endpoint(roles=ADMIN, body=categories.CategoryBody, tags=ADMIN_TAGS, status=201,
              errors=(Conflict, SensitiveContent), refuses=categories.CATEGORY_RULES,
              links={"category_id": "/id"}, summary="Add a category")
    async def post(self) -> None:
        self.ok(await categories.create_category(self.r, self.user_id, self.body), status=201)


class AdminCategoryHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=categories.CategoryPatch, tags=ADMIN_TAGS,
              errors=(Conflict, SensitiveContent), refuses=categories.CATEGORY_RULES,
              summary="Change a category (moving it moves its subtree)")
    async def patch(self, category_id: int) -> None:
        self.ok(await categories.update_category(self.r, self.user_id, category_id,
                                                 self.body))

    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, errors=(Conflict,),
              summary="Delete a category no product and no child category uses")
    async def delete(self, category_id: int) -> None:
        self.ok(await categories.delete_category(self.r, self.user_id, category_id))


class AdminProductOffSaleHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=ADMIN_TAGS, errors=(Conflict,),
              summary="Take any product off sale, with a reason its merchant sees")
    async def post(self, product_id: int) -> None:
        self.ok(await products.take_off_sale(self.r, _actor(self), product_id,
                                             self.body.reason))


class AdminProductApproveHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, errors=(Conflict,),
              summary="Pass a product held in review (or rejected): it goes on sale")
    async def post(self, product_id: int) -> None:
        self.ok(await product_reviews.approve_product(self.r, self.user_id, product_id))


class AdminProductRejectHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=ADMIN_TAGS, errors=(Conflict,),
              summary="Reject a product in review or on sale, with a reason its merchant "
                      "sees")
    async def post(self, product_id: int) -> None:
        self.ok(await product_reviews.reject_product(self.r, self.user_id, product_id,
                                                     self.body.reason))


class AdminAuditLogHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=AuditLogQuery, tags=ADMIN_TAGS,
              summary="The audit log of merchant and admin writes, newest first")
    async def get(self) -> None:
        q = self.query
        self.ok(await audit.list_entries(self.r, q, actor_id=q.actor_id, action=q.action,
                                         target_type=q.target_type, target_id=q.target_id))
