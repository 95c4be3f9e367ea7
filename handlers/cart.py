"""Cart endpoints: the caller's cart under /v1/cart.

Thin: each calls one function of pawhome/mall/cart.py; docs/mall.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import cart
from pawhome.platform.errors import NotFound, ValidationFailed

TAGS = ("cart",)


class CartHandler(ApiHandler):
    @endpoint(tags=TAGS, response=cart.CartView,
              summary="The cart by shop, each line checked against the catalogue now "
                      "(off sale, SKU deleted, out of stock, price changed), with the totals "
                      "of the selected lines that can be bought")
    async def get(self) -> None:
        self.ok(await cart.view_cart(self.r, self.user_id))

    @endpoint(tags=TAGS, query=cart.CartClearQuery, response=cart.CartChanged,
              summary="Empty the cart (?selected=true: only the selected lines)")
    async def delete(self) -> None:
        self.ok(await cart.clear(self.r, self.user_id, self.query.selected))


class CartCountHandler(ApiHandler):
    @endpoint(tags=TAGS, response=cart.CartCount, summary="The cart badge: lines and units")
    async def get(self) -> None:
        self.ok(await cart.count(self.r, self.user_id))


class CartItemsHandler(ApiHandler):
    @endpoint(tags=TAGS, body=cart.CartAdd, response=cart.CartItemResult, idempotent=True,
              links={"sku_id": "/sku_id"}, errors=(NotFound, ValidationFailed),
              refuses=cart.ADD_RULES,
              summary="Add units of a SKU (to its line if the cart has one)")
    async def post(self) -> None:
        self.ok(await cart.add_item(self.r, self.user_id, self.body))


class CartItemHandler(ApiHandler):
    @endpoint(tags=TAGS, body=cart.CartLineChange, response=cart.CartItemResult,
              refuses=cart.CHANGE_RULES,
              summary="Set a line's quantity or selection (the fields sent)")
    async def patch(self, sku_id: int) -> None:
        self.ok(await cart.change_item(self.r, self.user_id, sku_id, self.body))

    @endpoint(tags=TAGS, response=cart.CartChanged, summary="Take a line out of the cart")
    async def delete(self, sku_id: int) -> None:
        self.ok(await cart.remove_item(self.r, self.user_id, sku_id))


class CartSelectionHandler(ApiHandler):
    @endpoint(tags=TAGS, body=cart.CartSelection, response=cart.CartChanged,
              refuses=cart.SELECTION_RULES,
              summary="Select or unselect lines (sku_ids, or all: true)")
    async def post(self) -> None:
        self.ok(await cart.select_items(self.r, self.user_id, self.body))
