"""After-sale endpoints: a buyer's refund requests (ask, list, withdraw), the merchant's
decisions and the admin's arbitration and force-cancel.

Thin: each calls one function of pawhome/mall/refunds.py; docs/mall.md "After-sale".
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from handlers.orders import OptionalReasonBody, ReasonBody
from pawhome.mall import refunds
from pawhome.platform.errors import Conflict, OrderStateConflict, ValidationFailed

TAGS = ("orders",)
SELLERS = ("merchant", "admin")
ADMIN = ("admin",)


class OrderRefundsHandler(ApiHandler):
    @endpoint(query=refunds.RefundListQuery, tags=TAGS,
              summary="The refund requests of one of the caller's orders")
    async def get(self, order_id: int) -> None:
        self.ok(await refunds.list_refunds(self.r, self.query, user_id=self.user_id,
                                           order_id=order_id))

    @endpoint(body=refunds.RefundBody, tags=TAGS, idempotent=True, status=201,
              errors=(OrderStateConflict, ValidationFailed),
              summary="Ask for money back for lines of a paid order (photos optional)",
              refuses={"lines": "lines of this order not refunded yet",
                       "media_ids": "the caller's ready images"})
    async def post(self, order_id: int) -> None:
        self.ok(await refunds.request_refund(self.r, self.user_id, order_id, self.body),
                status=201)


class MyRefundsHandler(ApiHandler):
    @endpoint(query=refunds.RefundListQuery, tags=TAGS,
              summary="The caller's refund requests, newest first")
    async def get(self) -> None:
        self.ok(await refunds.list_refunds(self.r, self.query, user_id=self.user_id))


class RefundWithdrawHandler(ApiHandler):
    @endpoint(tags=TAGS, errors=(Conflict,), summary="Withdraw an undecided refund request")
    async def post(self, refund_id: int) -> None:
        self.ok(await refunds.withdraw(self.r, self.user_id, refund_id))


class SellerRefundsHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=refunds.RefundListQuery, tags=("merchant",),
              summary="Refund requests of the merchant's orders (admins: all)")
    async def get(self) -> None:
        scope = None if self.caller.role == "admin" else self.user_id
        self.ok(await refunds.list_refunds(self.r, self.query, merchant_id=scope))


class RefundApproveHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=OptionalReasonBody, tags=("merchant",), idempotent=True,
              errors=(Conflict, OrderStateConflict, ValidationFailed),
              summary="Approve a refund: the money goes back through WeChat Pay "
                      "(admins may also approve one a merchant rejected)")
    async def post(self, refund_id: int) -> None:
        scope = None if self.caller.role == "admin" else self.user_id
        self.ok(await refunds.decide(self.r, refund_id, approve=True, reason=self.body.reason,
                                     actor_id=self.user_id, actor_role=self.caller.role,
                                     merchant_id=scope))


class RefundRejectHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=ReasonBody, tags=("merchant",), errors=(Conflict,),
              summary="Reject a refund request with a reason (the buyer is told)")
    async def post(self, refund_id: int) -> None:
        scope = None if self.caller.role == "admin" else self.user_id
        self.ok(await refunds.decide(self.r, refund_id, approve=False, reason=self.body.reason,
                                     actor_id=self.user_id, actor_role=self.caller.role,
                                     merchant_id=scope))


class AdminOrderCancelHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=("admin",), idempotent=True,
              errors=(Conflict, OrderStateConflict, ValidationFailed),
              summary="Force-cancel an order: unpaid, cancelled; paid, refunded in full")
    async def post(self, order_id: int) -> None:
        self.ok(await refunds.force_cancel(self.r, order_id, admin_id=self.user_id,
                                           reason=self.body.reason))
