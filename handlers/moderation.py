"""Moderation endpoints: WeChat's message-push callback (image verdicts), the admin
moderation queue with approve/reject, and users' reports."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from gateway.openapi import RawBody
from pawhome.moderation import decisions, reports
from pawhome.moderation import reviews as moderation
from pawhome.platform import codec
from pawhome.platform.errors import BadRequest, Conflict, Forbidden, NotFound
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import PageQuery

ADMIN = ("admin",)
TARGETS = ("post", "comment")


class PushQuery(BaseModel):
    # WeChat adds more (openid, encrypt_type, msg_signature); they are not ours to refuse.
    model_config = ConfigDict(extra="allow")
    signature: str = Field("", max_length=64)
    timestamp: str = Field("", max_length=32)
    nonce: str = Field("", max_length=64)
    echostr: str = Field("", max_length=256)


class QueueQuery(PageQuery):
    kind: Literal["post", "comment", "user"] = "post"
    state: Literal["hidden", "pending", "reported"] = "hidden"


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK)


class WeChatPushHandler(ApiHandler):
    """The message-push URL set in the mini-program console (plain mode, JSON format)."""

    def _verify(self) -> None:
        q = self.query
        if not moderation.push_signature_valid(self.r.settings, q.signature, q.timestamp,
                                               q.nonce):
            raise Forbidden("Bad signature")

    def _reply_text(self, text: str) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)

    @endpoint(auth=False, query=PushQuery, tags=("moderation",), errors=(Forbidden,),
              response=RawBody("text/plain", {"type": "string"}),
              summary="WeChat's URL verification: echoes echostr when the signature holds")
    async def get(self) -> None:
        self._verify()
        self._reply_text(self.query.echostr)

    @endpoint(auth=False, query=PushQuery, tags=("moderation",), errors=(Forbidden, BadRequest),
              response=RawBody("text/plain", {"type": "string", "const": "success"}),
              summary="WeChat pushes (wxa_media_check verdicts, matched by trace_id)")
    async def post(self) -> None:
        self._verify()
        try:
            message = codec.loads(self.request.body or b"{}")
        except codec.JSONDecodeError:
            raise BadRequest("Push body must be JSON (plain mode)") from None
        if not isinstance(message, dict):
            raise BadRequest("Push body must be a JSON object")
        if "Encrypt" in message:
            raise BadRequest("Safe (encrypted) push mode is not supported; use plain mode")
        await moderation.handle_push(self.r, message)
        self._reply_text("success")  # what WeChat expects; anything else makes it retry


class AdminModerationQueueHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=QueueQuery, tags=("admin", "moderation"),
              summary="Content waiting for an admin: held, pending, or reported")
    async def get(self) -> None:
        q = self.query
        self.ok(await decisions.list_queue(self.r, q.kind, q.state, q))


class AdminApproveHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin", "moderation"),
              summary="Publish a post or comment; open reports are dismissed")
    async def post(self, target_type: str, target_id: int) -> None:
        if target_type not in TARGETS:
            raise NotFound("Unknown moderation target")
        self.ok(await decisions.approve(self.r, self.user_id, target_type, target_id))


class AdminRejectHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=RejectBody, tags=("admin", "moderation"),
              summary="Remove a post or comment with a reason; the author is notified")
    async def post(self, target_type: str, target_id: int) -> None:
        if target_type not in TARGETS:
            raise NotFound("Unknown moderation target")
        self.ok(await decisions.reject(self.r, self.user_id, target_type, target_id,
                                       self.body.reason.strip()))


class ReportsHandler(ApiHandler):
    @endpoint(body=reports.ReportBody, tags=("moderation",), status=201,
              errors=(NotFound, Conflict),
              refuses={"target_id": "someone else or someone else's post or comment"},
              summary="Report a post, comment or user (once per target)")
    async def post(self) -> None:
        self.ok(await reports.create_report(self.r, self.user_id, self.body), status=201)
