"""Feedback endpoints (docs/feedback.md): users send and read their own feedback; admins
list, search, read, reply, close and reopen under /v1/admin/feedback."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.feedback import tickets
from pawhome.platform.errors import (
    FeedbackStateConflict,
    RateLimited,
    SensitiveContent,
    ValidationFailed,
)

TAGS = ("feedback",)
ADMIN_TAGS = ("admin", "feedback")
ADMIN = ("admin",)


class FeedbackHandler(ApiHandler):
    @endpoint(body=tickets.FeedbackBody, tags=TAGS, status=201, idempotent=True,
              errors=(ValidationFailed, SensitiveContent, RateLimited),
              refuses={"media_ids": "the caller's ready images, each once",
                       "text": "no prohibited words"},
              links={"feedback_id": "/id"},
              summary="Send feedback: a category, text, up to 9 images, contact, app version "
                      "and device (a few an hour)")
    async def post(self) -> None:
        self.ok(await tickets.submit_feedback(self.r, self.user_id, self.body), status=201)

    @endpoint(query=tickets.MyFeedbackQuery, tags=TAGS,
              summary="The caller's feedback, newest first, with its status")
    async def get(self) -> None:
        self.ok(await tickets.my_feedback(self.r, self.user_id, self.query))


class FeedbackCategoriesHandler(ApiHandler):
    @endpoint(auth=False, tags=TAGS, summary="The feedback categories and their labels")
    async def get(self) -> None:
        self.ok({"items": tickets.categories()})


class MyFeedbackTicketHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="One of the caller's feedback tickets with the staff's replies")
    async def get(self, feedback_id: int) -> None:
        self.ok(await tickets.my_ticket(self.r, self.user_id, feedback_id))


class AdminFeedbackHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=tickets.AdminFeedbackQuery, tags=ADMIN_TAGS,
              summary="Every feedback ticket, newest first: filter by status, category, user; "
                      "q matches a ticket id or words in the text or contact")
    async def get(self) -> None:
        self.ok(await tickets.admin_list(self.r, self.query))


class AdminFeedbackTicketHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=ADMIN_TAGS,
              summary="One ticket with its user, replies and status timeline")
    async def get(self, feedback_id: int) -> None:
        self.ok(await tickets.admin_ticket(self.r, feedback_id))


class AdminFeedbackRepliesHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=tickets.ReplyBody, tags=ADMIN_TAGS, status=201,
              idempotent=True, errors=(FeedbackStateConflict,),
              summary="Reply to a ticket (open or replied): it becomes replied and the user "
                      "is notified")
    async def post(self, feedback_id: int) -> None:
        self.ok(await tickets.reply(self.r, self.user_id, feedback_id, self.body), status=201)


class AdminFeedbackActionsHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=tickets.ActionBody, tags=ADMIN_TAGS,
              errors=(FeedbackStateConflict,),
              summary="Close (from open or replied) or reopen (from closed) a ticket")
    async def post(self, feedback_id: int) -> None:
        self.ok(await tickets.change_status(self.r, self.user_id, feedback_id, self.body))
