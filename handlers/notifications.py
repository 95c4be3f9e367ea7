"""Notification centre endpoints: list by category, unread counts, mark read; admins send
system notifications. The domain rules live in pawhome/messaging/notifications.py."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.messaging import notifications
from pawhome.platform.errors import NotFound
from pawhome.platform.fields import NOT_BLANK
from pawhome.platform.pagination import CURSOR_RULE, CursorQuery, cursor_result, decode_cursor

Category = Literal["like", "comment", "reply", "follow", "mention", "order", "appointment",
                   "system", "activity"]


class NotificationListQuery(CursorQuery):
    category: Category | None = None


class MarkReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Category | None = None


class SystemNotificationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1, le=2**63 - 1)
    title: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    body: str = Field(min_length=1, max_length=1000, pattern=NOT_BLANK)


class NotificationsHandler(ApiHandler):
    @endpoint(query=NotificationListQuery, tags=("notifications",), refuses=CURSOR_RULE,
              links={"notification_id": "/items/0/id"},
              summary="The caller's notifications, newest activity first (cursor-paginated)")
    async def get(self) -> None:
        items, next_position = await notifications.list_notifications(
            self.r, self.user_id, self.query.category, decode_cursor(self.query.cursor),
            self.query.limit)
        self.ok(cursor_result(items, next_position))


class UnreadCountHandler(ApiHandler):
    @endpoint(tags=("notifications",), summary="Unread notifications per category and in total")
    async def get(self) -> None:
        self.ok(await notifications.unread_counts(self.r, self.user_id))


class NotificationReadHandler(ApiHandler):
    @endpoint(tags=("notifications",), summary="Mark one notification read (idempotent)")
    async def post(self, notification_id: int) -> None:
        self.ok(await notifications.mark_read(self.r, self.user_id, notification_id))


class NotificationsReadHandler(ApiHandler):
    @endpoint(body=MarkReadBody, tags=("notifications",),
              summary="Mark a category read, or everything when no category is given")
    async def post(self) -> None:
        self.ok(await notifications.mark_all_read(self.r, self.user_id, self.body.category))


class AdminNotificationsHandler(ApiHandler):
    @endpoint(roles=("admin",), body=SystemNotificationBody, tags=("admin",), status=201,
              errors=(NotFound,),
              summary="Send a system notification to one user")
    async def post(self) -> None:
        self.ok(await notifications.send_system_notification(
            self.r, self.body.user_id, self.body.title.strip(), self.body.body.strip()),
            status=201)
