"""Recommendation endpoints: the personal post feed and "recommended for you" products.
Scoring is pawhome/recommend/ (docs/recommendations.md)."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.pagination import CURSOR_RULE
from pawhome.recommend import feed, products


class RecommendFeedHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=feed.RecommendQuery, tags=("posts",),
              refuses=CURSOR_RULE, links={"post_id": "/items/0/id"},
              summary="Posts recommended for the caller (hot and new for a visitor); the "
                      "cursor continues the session, which never repeats a post")
    async def get(self) -> None:
        self.ok(await feed.recommend_posts(self.r, self.viewer_id, self.query))


class RecommendedProductsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=products.RecommendedProductsQuery,
              tags=("mall",), links={"product_id": "/items/0/id"},
              summary="Products on sale recommended for the caller (best sellers for a "
                      "visitor)")
    async def get(self) -> None:
        self.ok(await products.recommended_page(self.r, self.viewer_id, self.query))
