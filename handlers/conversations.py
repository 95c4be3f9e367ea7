"""Direct-message endpoints: conversations, their history, sending, read marks, recall, hiding.

Thin: each method parses, calls one domain function — pawhome/messaging/chat.py for writes,
chat_views.py for reads — and replies. The WebSocket frames (handlers/chat_frames.py) call the
same functions; docs/chat.md describes both.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.handler import ApiHandler, endpoint
from pawhome.messaging import chat, chat_views
from pawhome.platform.errors import (
    AttachmentRefused,
    ChatBlocked,
    ChatNotAllowed,
    NotFound,
    RecallWindowPassed,
    SensitiveContent,
)
from pawhome.platform.pagination import (
    CURSOR_RULE,
    MAX_LIMIT,
    CursorQuery,
    cursor_result,
    decode_cursor,
)


class OpenConversationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_user_id: int = Field(ge=1, le=chat.MAX_ID)


class MessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before_seq: int | None = Field(None, ge=1, le=chat.MAX_ID)
    limit: int = Field(20, ge=1, le=MAX_LIMIT)


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: int = Field(ge=0, le=chat.MAX_ID)


class ConversationsHandler(ApiHandler):
    @endpoint(query=CursorQuery, tags=("chat",), refuses=CURSOR_RULE,
              summary="The caller's conversations, most recent message first")
    async def get(self) -> None:
        items, position = await chat_views.list_conversations(
            self.r, self.user_id, decode_cursor(self.query.cursor), self.query.limit)
        self.ok(cursor_result(items, position))

    @endpoint(body=OpenConversationBody, tags=("chat",), links={"conversation_id": "/id"},
              errors=(NotFound, ChatBlocked, ChatNotAllowed),
              refuses={"to_user_id": "not the caller's own id"},
              summary="Open the conversation with a user (created if new)")
    async def post(self) -> None:
        self.ok(await chat.open_conversation(self.r, self.user_id, self.body.to_user_id))


class ConversationHandler(ApiHandler):
    @endpoint(tags=("chat",), summary="One of the caller's conversations")
    async def get(self, conversation_id: int) -> None:
        self.ok(await chat_views.get_conversation(self.r, self.user_id, conversation_id))

    @endpoint(tags=("chat",), summary="Hide a conversation for the caller (until a new message)")
    async def delete(self, conversation_id: int) -> None:
        self.ok(await chat.hide_conversation(self.r, self.user_id, conversation_id))


class ConversationHideHandler(ApiHandler):
    @endpoint(tags=("chat",), summary="Hide a conversation for the caller (until a new message)")
    async def post(self, conversation_id: int) -> None:
        self.ok(await chat.hide_conversation(self.r, self.user_id, conversation_id))


class MessagesHandler(ApiHandler):
    @endpoint(query=MessagesQuery, tags=("chat",),
              summary="A conversation's messages, newest first (before_seq pages back)")
    async def get(self, conversation_id: int) -> None:
        self.ok(await chat_views.list_messages(self.r, self.user_id, conversation_id,
                                               self.query.before_seq, self.query.limit))

    @endpoint(body=chat.MessageBody, tags=("chat",), links={"seq": "/seq"},
              errors=(ChatBlocked, ChatNotAllowed, AttachmentRefused, SensitiveContent),
              refuses={"text": "required, 1 to CHAT_MAX_TEXT characters, with kind text",
                       "media_id": "required with kind image: a ready image of the caller",
                       "card": "required with kind share",
                       "kind": "text, media_id or card goes with it, the other two not"},
              summary="Send a message (repeating a client_msg_id returns the same ack)")
    async def post(self, conversation_id: int) -> None:
        self.ok(await chat.send_message(self.r, self.user_id, self.body,
                                        conversation_id=conversation_id))


class ReadHandler(ApiHandler):
    @endpoint(body=ReadBody, tags=("chat",),
              summary="Move the caller's read mark forward (REST twin of chat.read)")
    async def post(self, conversation_id: int) -> None:
        self.ok(await chat.mark_read(self.r, self.user_id, conversation_id, self.body.seq))


class RecallHandler(ApiHandler):
    @endpoint(tags=("chat",), summary="Recall one's own message within the recall window",
              errors=(RecallWindowPassed,))
    async def post(self, conversation_id: int, seq: int) -> None:
        self.ok(await chat.recall_message(self.r, self.user_id, conversation_id, seq))


class UnreadCountHandler(ApiHandler):
    @endpoint(tags=("chat",), summary="Unread messages: total and per recent conversation")
    async def get(self) -> None:
        self.ok(await chat_views.unread_counts(self.r, self.user_id))
