"""Product reviews: a buyer reviews the lines of a completed order, lists their reviews and
what is left to review; anyone reads a product's published reviews; the merchant (or an
admin) replies once; admins approve held reviews or take reviews down.

Thin: each calls one function of pawhome/mall/reviews.py or
pawhome/moderation/buyer_reviews.py; docs/mall.md "Reviews".
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from handlers.orders import ReasonBody
from pawhome.mall import reviews
from pawhome.moderation import buyer_reviews
from pawhome.platform.errors import (
    AlreadyReviewed,
    ReviewNotAllowed,
    ReviewReplyExists,
    SensitiveContent,
    ValidationFailed,
)

TAGS = ("reviews",)
SELLERS = ("merchant", "admin")
ADMIN = ("admin",)


class OrderReviewsHandler(ApiHandler):
    @endpoint(body=reviews.ReviewBody, tags=TAGS, status=201,
              errors=(ReviewNotAllowed, AlreadyReviewed, ValidationFailed, SensitiveContent),
              summary="Review one line of the caller's completed order (rating 1-5, text, "
                      "up to 9 photos); published once moderation passes it",
              refuses={"item_id": "a line of this order, not refunded in full",
                       "media_ids": "the caller's ready images",
                       "text": "no prohibited words"})
    async def post(self, order_id: int) -> None:
        self.ok(await reviews.submit_review(self.r, self.user_id, order_id, self.body),
                status=201)


class ProductReviewsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=reviews.ProductReviewsQuery, tags=TAGS,
              summary="A product's published reviews, newest first (filter by rating or "
                      "photos), with its rating summary and counts per star")
    async def get(self, product_id: int) -> None:
        self.ok(await reviews.product_reviews(self.r, self.viewer_id, product_id, self.query))


class MyReviewsHandler(ApiHandler):
    @endpoint(query=reviews.MyReviewsQuery, tags=TAGS,
              summary="The caller's reviews in every state (pending, visible, hidden, "
                      "removed), newest first")
    async def get(self) -> None:
        self.ok(await reviews.my_reviews(self.r, self.user_id, self.query))


class LinesToReviewHandler(ApiHandler):
    @endpoint(query=reviews.MyReviewsQuery, tags=TAGS,
              summary="The caller's lines of completed orders not reviewed yet")
    async def get(self) -> None:
        self.ok(await reviews.lines_to_review(self.r, self.user_id, self.query))


class SellerReviewsHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=reviews.SellerReviewsQuery, tags=("merchant",),
              summary="Published reviews of the merchant's products (admins: every review, "
                      "by status)")
    async def get(self) -> None:
        scope = None if self.caller.role == "admin" else self.user_id
        self.ok(await reviews.seller_reviews(self.r, scope, self.query))


class ReviewReplyHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=reviews.ReplyBody, tags=("merchant",),
              errors=(ReviewNotAllowed, ReviewReplyExists, SensitiveContent),
              refuses={"text": "no prohibited words"},
              summary="Reply once to a published review of the merchant's product (the "
                      "buyer is told)")
    async def post(self, review_id: int) -> None:
        scope = None if self.caller.role == "admin" else self.user_id
        self.ok(await reviews.reply(self.r, review_id, actor_id=self.user_id,
                                    merchant_id=scope, body=self.body))


class AdminReviewApproveHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), errors=(ReviewNotAllowed,),
              summary="Publish a review held for review (or removed): it counts in the "
                      "product's rating")
    async def post(self, review_id: int) -> None:
        self.ok(await buyer_reviews.approve_review(self.r, self.user_id, review_id))


class AdminReviewRejectHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=("admin",), errors=(ReviewNotAllowed,),
              summary="Take a review down with a reason its author sees; it leaves the "
                      "product's rating")
    async def post(self, review_id: int) -> None:
        self.ok(await buyer_reviews.reject_review(self.r, self.user_id, review_id,
                                                  self.body.reason))
