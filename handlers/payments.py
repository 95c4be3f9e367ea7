"""Payment endpoints: WeChat Pay's notify URLs (public, answered in WeChat's shape), the
development "pay now" of the simulated provider, and the admins' payment lookups and daily
reconciliation reports. Thin: each calls one function of pawhome/payments/; docs/payments.md.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.handler import ApiHandler, endpoint
from gateway.openapi import RawBody
from pawhome.payments import notifies, payments, reconciliation
from pawhome.platform import codec, errors
from pawhome.platform.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PaymentClosed,
    Unauthorized,
    ValidationFailed,
    WeChatPayUnavailable,
)
from pawhome.platform.pagination import PageQuery

ADMIN = ("admin",)
TAGS = ("payments",)
ADMIN_TAGS = ("admin", "payments")

WECHAT_SUCCESS = RawBody("application/json", {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"const": "SUCCESS"}, "message": {"type": "string"}}})
WECHAT_FAIL = RawBody("application/json", {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"const": "FAIL"}, "message": {"type": "string"}},
    "description": "WeChat Pay's failure answer: any non-2xx makes WeChat retry the notify"})
NOTIFY_DESCRIPTION = (
    "Called by WeChat Pay, not by clients. The body is WeChat's notify; it is verified "
    "(Wechatpay-Serial, -Signature over timestamp\\nnonce\\nbody\\n, -Timestamp within 5 "
    "minutes), decrypted (AEAD_AES_256_GCM) and applied once. 200 SUCCESS: recorded (applied "
    "now or before). FAIL with 401: not verifiable; 404: unknown out_trade_no/out_refund_no; "
    "409: contradicts our records (amount, mchid, appid), recorded for admins; 413: too "
    "large; 5xx: try again. Payment and refund notifies are accepted on either URL.")


class WeChatPayNotifyHandler(ApiHandler):
    """WeChat Pay's notify_url: payment results (TRANSACTION.SUCCESS)."""

    def error_body(self, error: errors.AppError) -> Any:
        return notifies.fail(error.message)

    async def answer(self) -> None:
        status, reply = await notifies.handle_notification(self.r, self.request.headers,
                                                           self.request.body or b"")
        self.set_status(status)
        self.finish(codec.dumps(reply))

    @endpoint(auth=False, tags=TAGS, response=WECHAT_SUCCESS, error_response=WECHAT_FAIL,
              errors=(Unauthorized, NotFound, Conflict, PayloadTooLarge),
              summary="WeChat Pay's payment result notify", description=NOTIFY_DESCRIPTION)
    async def post(self) -> None:
        await self.answer()


class WeChatPayRefundNotifyHandler(WeChatPayNotifyHandler):
    """WeChat Pay's refund notify_url: refund results (REFUND.SUCCESS/ABNORMAL/CLOSED)."""

    @endpoint(auth=False, tags=TAGS, response=WECHAT_SUCCESS, error_response=WECHAT_FAIL,
              errors=(Unauthorized, NotFound, Conflict, PayloadTooLarge),
              summary="WeChat Pay's refund result notify", description=NOTIFY_DESCRIPTION)
    async def post(self) -> None:
        await self.answer()


class SimulatedConfirmHandler(ApiHandler):
    """Pay with the simulated WeChat Pay. Only in development settings, like dev-login."""

    def prepare(self) -> None:
        super().prepare()
        if not self.r.settings.dev_login:
            raise NotFound("No such endpoint")

    @endpoint(tags=TAGS, idempotent=True, errors=(NotFound, Conflict, PaymentClosed),
              summary="Development: pay a prepaid payment with the simulated WeChat Pay "
                      "(absent in production)",
              description="The simulated WeChat settles the transaction and sends its signed "
                          "notify through the real notify handling. 404 unless the payment "
                          "provider is the simulated one and the payment is the caller's.")
    async def post(self, out_trade_no: str) -> None:
        self.ok(await notifies.confirm_simulated_payment(self.r, self.user_id, self.caller.role,
                                                         out_trade_no))


class PaymentLookupQuery(PageQuery):
    out_trade_no: str | None = Field(None, min_length=1, max_length=32,
                                     pattern=r"^[A-Za-z0-9_\-|*]+$")
    status: Literal["created", "prepaid", "paid", "closed", "refunded"] | None = None


class NotificationQuery(PageQuery):
    outcome: Literal["applied", "duplicate", "refund_after_cancel", "mismatch",
                     "ignored"] | None = None


class AdminPaymentsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=PaymentLookupQuery, tags=ADMIN_TAGS,
              summary="Look payments up by out_trade_no or status, with refunds and notifies")
    async def get(self) -> None:
        q = self.query
        self.ok(await payments.find_payments(self.r, q, out_trade_no=q.out_trade_no,
                                             status=q.status))


class AdminPaymentNotificationsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=NotificationQuery, tags=ADMIN_TAGS,
              summary="WeChat Pay results as recorded; outcome=mismatch needs a look")
    async def get(self) -> None:
        self.ok(await payments.find_notifications(self.r, self.query,
                                                  outcome=self.query.outcome))


class AdminReconciliationsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=PageQuery, tags=ADMIN_TAGS,
              summary="Daily reconciliation reports, newest day first")
    async def get(self) -> None:
        self.ok(await reconciliation.list_reports(self.r, self.query))


class AdminReconciliationHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS,
              summary="One day's reconciliation report with its mismatches")
    async def get(self, bill_date: str) -> None:
        self.ok(await reconciliation.get_report(self.r, bill_date))


class AdminReconciliationRunHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS, errors=(ValidationFailed, WeChatPayUnavailable),
              refuses={"bill_date": "a past or today's date, YYYY-MM-DD (Beijing time)"},
              summary="Reconcile a day against WeChat Pay's trade bill now")
    async def post(self, bill_date: str) -> None:
        self.ok(await reconciliation.run_reconciliation(self.r, bill_date, actor_id=self.user_id))
