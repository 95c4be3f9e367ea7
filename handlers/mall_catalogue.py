"""The public catalogue: the category tree, product lists, product pages and product search,
and a buyer's product favorites and browse footprints.

Thin: each calls one function of pawhome/mall/ (categories, product_views, product_search,
product_favorites); cached pages are answered as the encoded bytes those return;
docs/mall.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.mall import categories, product_favorites, product_search, product_views
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery

TAGS = ("mall",)
Q_RULE = {"q": "at least one letter, digit or CJK character, and at most "
               "SEARCH_QUERY_MAX_WORDS (8) words once segmented"}


class RawReply(ApiHandler):
    """A reply whose `data` is already encoded (a cached page, as stored)."""

    def reply_raw(self, data: bytes) -> None:
        self.finish(b'{"code":0,"message":"ok","data":' + data + b"}")


class CategoriesHandler(RawReply):
    @endpoint(auth=False, tags=TAGS, read_ahead=lambda h: categories.tree_reads(h.r),
              summary="The category tree: enabled categories, children nested, by sort order")
    async def get(self) -> None:
        self.reply_raw(await categories.category_tree(self.r, self.read_ahead))


class ProductsHandler(RawReply):
    @endpoint(auth=False, query=product_views.ProductListQuery, tags=TAGS,
              links={"product_id": "/items/0/id"},
              read_ahead=lambda h: product_views.list_reads(h.r, h.query),
              summary="Products on sale, filtered (category and those below it, pet type, "
                      "price in fen, merchant) and sorted; page/limit")
    async def get(self) -> None:
        self.reply_raw(await product_views.list_page(self.r, self.query, self.read_ahead))


class ProductHandler(RawReply):
    @endpoint(auth=False, viewer=True, tags=TAGS,
              read_ahead=lambda h: product_views.detail_reads(h.r, h.path_kwargs["product_id"]),
              summary="A product on sale with its SKUs, media, merchant and rating, and "
                      "whether the caller collected it")
    async def get(self, product_id: int) -> None:
        self.reply_raw(await product_views.product_page(self.r, self.viewer_id, product_id,
                                                        self.read_ahead))


class ProductSearchHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=product_search.ProductSearchQuery, tags=TAGS,
              refuses=Q_RULE, links={"product_id": "/items/0/id"},
              summary="Products on sale holding every word of q, with the list's filters "
                      "and sorts (or relevance)",
              description="Items carry HTML `name_html` and `subtitle_html` (escaped text, "
                          "matches in <em>).")
    async def get(self) -> None:
        self.ok(await product_search.find_products(self.r, self.viewer_id, self.query))


class ProductFavoriteHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="Add a product on sale to the caller's favorites")
    async def post(self, product_id: int) -> None:
        self.ok(await product_favorites.set_favorite(self.r, self.user_id, product_id, True))

    @endpoint(tags=TAGS, summary="Remove a product from the caller's favorites")
    async def delete(self, product_id: int) -> None:
        self.ok(await product_favorites.set_favorite(self.r, self.user_id, product_id, False))


class MyProductFavoritesHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=TAGS, refuses=CURSOR_RULE,
              summary="The caller's favorite products, most recently collected first")
    async def get(self) -> None:
        self.ok(await product_favorites.list_favorites(self.r, self.user_id, self.query))


class MyFootprintsHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=TAGS, refuses=CURSOR_RULE,
              summary="Products the caller opened, last viewed first")
    async def get(self) -> None:
        self.ok(await product_favorites.list_footprints(self.r, self.user_id, self.query))

    @endpoint(tags=TAGS, summary="Clear the caller's product footprints")
    async def delete(self) -> None:
        self.ok(await product_favorites.clear_footprints(self.r, self.user_id))

