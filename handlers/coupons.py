"""Coupon endpoints: what a buyer can claim and holds (available, claim by button or code,
the wallet) and the issuers' templates (merchants their own shop's, admins any).

Thin: each calls one function of pawhome/promotions/coupons.py; docs/promotions.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import (
    CouponCodeUnknown,
    CouponLimitReached,
    CouponNotClaimable,
    CouponSoldOut,
    CouponTemplateLocked,
    CouponTermsInvalid,
    NotFound,
)
from pawhome.promotions import coupons
from pawhome.promotions.coupons_terms import TEMPLATE_RULES, TemplateBody, TemplatePatch

TAGS = ("coupons",)
SELLER_TAGS = ("merchant", "coupons")
SELLERS = ("merchant", "admin")
CLAIM_ERRORS = (CouponSoldOut, CouponLimitReached, CouponNotClaimable)


class _CouponHandler(ApiHandler):
    @property
    def claim_key(self) -> str | None:
        return self.request.headers.get("Idempotency-Key", "")[:64] or None


class AvailableCouponsHandler(ApiHandler):
    @endpoint(query=coupons.AvailableQuery, tags=TAGS, errors=(NotFound,),
              summary="Coupons to claim and the caller's usable ones, for a product or the "
                      "cart (each with what it saves there), or all of them")
    async def get(self) -> None:
        self.ok(await coupons.available(self.r, self.user_id, self.query))


class WalletHandler(ApiHandler):
    @endpoint(query=coupons.WalletQuery, tags=TAGS,
              summary="The caller's coupons by state: unused (or locked by an unpaid order), "
                      "used, expired")
    async def get(self) -> None:
        self.ok(await coupons.wallet(self.r, self.user_id, self.query))


class ClaimHandler(_CouponHandler):
    @endpoint(tags=TAGS, idempotent=True, status=201, errors=CLAIM_ERRORS,
              summary="Claim a coupon (button coupons; a retried Idempotency-Key returns the "
                      "same coupon)")
    async def post(self, template_id: int) -> None:
        self.ok(await coupons.claim(self.r, self.user_id, template_id, self.claim_key),
                status=201)


class ClaimByCodeHandler(_CouponHandler):
    @endpoint(body=coupons.CodeBody, tags=TAGS, idempotent=True, status=201,
              errors=(*CLAIM_ERRORS, CouponCodeUnknown),
              refuses={"code": "the code of a coupon (any case)"},
              summary="Claim the coupon a code stands for")
    async def post(self) -> None:
        self.ok(await coupons.claim_by_code(self.r, self.user_id, self.body.code,
                                            self.claim_key), status=201)


# -- issuers --------------------------------------------------------------------------------------


class TemplatesHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=coupons.TemplateListQuery, tags=SELLER_TAGS,
              summary="The caller's coupon templates (admins: every one)")
    async def get(self) -> None:
        self.ok(await coupons.list_templates(self.r, self.user_id, self.caller.role,
                                             self.query))

    @endpoint(roles=SELLERS, body=TemplateBody, tags=SELLER_TAGS, status=201,
              errors=(CouponTermsInvalid,), refuses=TEMPLATE_RULES | {
                  "amount_off": "see kind", "percent_off": "see kind",
                  "max_discount": "see kind", "min_spend": "see kind",
                  "category_id": "see scope", "merchant_id": "see scope",
                  "product_ids": "see scope", "valid_to": "see valid_from"},
              links={"template_id": "/id"},
              summary="Create a coupon template (a merchant: for its own shop)")
    async def post(self) -> None:
        self.ok(await coupons.create_template(self.r, self.user_id, self.caller.role,
                                              self.body), status=201)


class TemplateHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS, summary="One of the caller's coupon templates")
    async def get(self, template_id: int) -> None:
        self.ok(await coupons.get_template(self.r, self.user_id, self.caller.role,
                                           template_id))

    @endpoint(roles=SELLERS, body=TemplatePatch, tags=SELLER_TAGS,
              errors=(CouponTermsInvalid, CouponTemplateLocked),
              refuses={"terms": "as for a new template", "total_quantity":
                       TEMPLATE_RULES["total_quantity"]},
              summary="Change a template (its terms only before any claim)")
    async def patch(self, template_id: int) -> None:
        self.ok(await coupons.update_template(self.r, self.user_id, self.caller.role,
                                              template_id, self.body))


class TemplateStopHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS,
              summary="Stop issuing a template (claimed coupons stay usable)")
    async def post(self, template_id: int) -> None:
        self.ok(await coupons.stop_template(self.r, self.user_id, self.caller.role,
                                            template_id))
