"""One error hierarchy, mapped to HTTP statuses and business codes in one table.

Domain code raises these; the gateway turns any of them into the PRODUCT.md error envelope
`{"code", "message", "errors": [{"field", "message"}]}` with the matching HTTP status.
docs/errors.md is generated from `ERROR_TABLE` (see `python -m gateway.openapi`).
"""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 500
    code: int = 50000
    default_message: str = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors or []
        self.headers = headers or {}
        self.data = data
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, "errors": self.errors}
        if self.data is not None:
            out["data"] = self.data
        return out


def field_error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


class BadRequest(AppError): ...
class MalformedJson(BadRequest): ...
class UnknownFrameType(BadRequest): ...
class HeadersTooLarge(BadRequest): ...
class ValidationFailed(AppError): ...
class Unauthorized(AppError): ...
class TokenExpired(Unauthorized): ...
class TokenInvalid(Unauthorized): ...
class TokenRevoked(Unauthorized): ...
class RefreshTokenReused(Unauthorized): ...
class Forbidden(AppError): ...
class UserBanned(Forbidden): ...
class NotFound(AppError): ...
class MethodNotAllowed(AppError): ...
class Conflict(AppError): ...
class IdempotencyInProgress(Conflict): ...
class IdempotencyMismatch(AppError): ...
class PayloadTooLarge(AppError): ...
class RateLimited(AppError): ...
class TooManyTopics(RateLimited): ...
class SensitiveContent(AppError): ...
class InvalidCode(AppError): ...
class WeChatError(AppError):
    errcode: int | None = None  # WeChat's errcode, for callers that treat some as final
class WeChatRateLimited(WeChatError): ...
class WeChatUnavailable(WeChatError): ...
class WeChatBadReply(WeChatUnavailable): ...
class PhoneTaken(Conflict): ...
class ChatBlocked(Forbidden): ...
class ChatNotAllowed(Forbidden): ...
class RecallWindowPassed(Forbidden): ...
class AttachmentRefused(AppError): ...
class SmsUnavailable(AppError): ...
# -- mall (docs/mall.md) --
class OrderStateConflict(Conflict): ...
class OutOfStock(Conflict): ...
class NotPurchasable(ValidationFailed): ...
class InternalError(AppError): ...
class ServiceUnavailable(AppError): ...
class DatabaseUnavailable(ServiceUnavailable): ...
class CacheUnavailable(ServiceUnavailable): ...
class BrokerUnavailable(ServiceUnavailable): ...
class ShuttingDown(ServiceUnavailable): ...
# -- payments (docs/payments.md) --
class PaymentAlreadyPaid(Conflict): ...
class PaymentClosed(Conflict): ...
class RefundNotAllowed(Conflict): ...
class WeChatPayUnavailable(ServiceUnavailable): ...
# -- points (docs/points.md) --
class PointsKeyReused(Conflict): ...
class InsufficientPoints(ValidationFailed): ...
class InsufficientInventory(ValidationFailed): ...
# -- reviews and home slots (docs/mall.md "Reviews", docs/promotions.md "Home slots") --
class ReviewNotAllowed(Conflict): ...
class AlreadyReviewed(Conflict): ...
class ReviewReplyExists(Conflict): ...


# class, HTTP status, business code, default message. The only place codes are assigned.
ERROR_TABLE: list[tuple[type[AppError], int, int, str]] = [
    (BadRequest, 400, 40000, "Bad request"),
    (MalformedJson, 400, 40001, "Request body is not valid JSON"),
    (UnknownFrameType, 400, 40002, "Unknown WebSocket frame type"),
    (HeadersTooLarge, 400, 40003, "Request headers too large"),
    (InvalidCode, 400, 40010, "The login code is invalid or expired"),
    (WeChatError, 400, 40020, "WeChat rejected the request"),
    (Unauthorized, 401, 40100, "Authentication required"),
    (TokenExpired, 401, 40101, "Token expired"),
    (TokenInvalid, 401, 40102, "Token invalid"),
    (TokenRevoked, 401, 40103, "Token revoked"),
    (RefreshTokenReused, 401, 40104, "Refresh token reuse detected; the session was revoked"),
    (Forbidden, 403, 40300, "Forbidden"),
    (UserBanned, 403, 40301, "This account is banned"),
    (ChatBlocked, 403, 40310, "You cannot message this user: one of you blocked the other"),
    (ChatNotAllowed, 403, 40311, "This user does not accept messages from you"),
    (RecallWindowPassed, 403, 40312, "Too late to recall this message"),
    (NotFound, 404, 40400, "Not found"),
    (MethodNotAllowed, 405, 40500, "Method not allowed"),
    (Conflict, 409, 40900, "Conflict"),
    (IdempotencyInProgress, 409, 40901, "A request with this Idempotency-Key is in progress"),
    (PhoneTaken, 409, 40902, "This phone number is bound to another account"),
    (OrderStateConflict, 409, 40910, "The order is not in a state that allows this"),
    (OutOfStock, 409, 40911, "Out of stock"),
    (PayloadTooLarge, 413, 41300, "Request body too large"),
    (ValidationFailed, 422, 42200, "Validation failed"),
    (IdempotencyMismatch, 422, 42201, "Idempotency-Key was used with a different request"),
    (SensitiveContent, 422, 42202, "Content contains prohibited words"),
    (AttachmentRefused, 422, 42210, "This attachment cannot be sent"),
    (NotPurchasable, 422, 42220, "Some items cannot be bought as asked"),
    (RateLimited, 429, 42900, "Too many requests"),
    (TooManyTopics, 429, 42902, "Too many live topics on this connection"),
    (WeChatRateLimited, 429, 42901, "WeChat is rate limiting us; try again shortly"),
    (InternalError, 500, 50000, "Internal error"),
    (ServiceUnavailable, 503, 50300, "Service unavailable"),
    (DatabaseUnavailable, 503, 50301, "Database unavailable"),
    (CacheUnavailable, 503, 50302, "Cache unavailable"),
    (BrokerUnavailable, 503, 50303, "Task broker unavailable"),
    (WeChatUnavailable, 503, 50304, "WeChat is unreachable"),
    (SmsUnavailable, 503, 50305, "SMS provider unreachable"),
    (ShuttingDown, 503, 50306, "Server is shutting down"),
    (WeChatBadReply, 503, 50307, "WeChat sent a malformed reply"),
    # payments
    (PaymentAlreadyPaid, 409, 40920, "This has been paid already"),
    (PaymentClosed, 409, 40921, "This payment is closed: it can no longer be paid"),
    (RefundNotAllowed, 409, 40922, "This refund is not possible"),
    (WeChatPayUnavailable, 503, 50310, "WeChat Pay is unavailable; try again shortly"),
    # points
    (PointsKeyReused, 409, 40930, "This idempotency key was used for another points change"),
    (InsufficientPoints, 422, 42230, "Not enough points"),
    (InsufficientInventory, 422, 42232, "Not enough of this item in the inventory"),
    # reviews and home slots
    (ReviewNotAllowed, 409, 40960, "This cannot be reviewed or replied to now"),
    (AlreadyReviewed, 409, 40961, "This order line has been reviewed already"),
    (ReviewReplyExists, 409, 40962, "This review has a reply already"),
]

for _cls, _status, _code, _message in ERROR_TABLE:
    _cls.status, _cls.code, _cls.default_message = _status, _code, _message
AppError.status, AppError.code = InternalError.status, InternalError.code

_BY_STATUS = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 413: PayloadTooLarge, 422: ValidationFailed, 429: RateLimited,
    503: ServiceUnavailable,
}


def for_status(status: int) -> type[AppError]:
    """The generic error class for a bare HTTP status (404 from routing, 405, ...)."""
    return _BY_STATUS.get(status, InternalError)
