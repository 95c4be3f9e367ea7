"""Direct-message WebSocket frames: chat.send, chat.read, chat.typing, chat.recall.

The socket twin of handlers/conversations.py: each frame is validated by its pydantic model
and handed to the same pawhome/messaging/chat.py function as the REST endpoint — chat.send
through the group commit of pawhome/messaging/chat_writer.py, which decides with the same
rules (chat_rules.py) and gives the same answers — so both paths store, check and announce a
message identically. Only chat.send gets a direct reply (`chat.ack`); the others are answered
through the events they cause (chat.read, chat.recalled) or not at all (chat.typing). Errors
become `error` frames (gateway/ws.py).
"""
from __future__ import annotations

from pydantic import Field

from gateway.ws import ClientFrame, Connection, frame_handler
from pawhome.messaging import chat, chat_writer


class ChatSendFrame(ClientFrame, chat.MessageBody):
    """chat.send: a message to a user (`to_user_id`) or into a conversation."""
    to_user_id: int | None = Field(None, ge=1, le=chat.MAX_ID)
    conversation_id: int | None = Field(None, ge=1, le=chat.MAX_ID)


class ChatReadFrame(ClientFrame):
    conversation_id: int = Field(ge=1, le=chat.MAX_ID)
    seq: int = Field(ge=0, le=chat.MAX_ID)


class ChatTypingFrame(ClientFrame):
    conversation_id: int = Field(ge=1, le=chat.MAX_ID)


class ChatRecallFrame(ClientFrame):
    conversation_id: int = Field(ge=1, le=chat.MAX_ID)
    seq: int = Field(ge=1, le=chat.MAX_ID)


@frame_handler("chat.send", ChatSendFrame)
def on_chat_send(conn: Connection, frame: ChatSendFrame) -> None:
    # Group commit: sends arriving while a batch is written share the next transaction.
    # The ack (or error) goes out when the message committed; the socket's next frames are
    # read meanwhile, so one client may have several sends in flight (the writer keeps each
    # sender's messages in the order they arrived).
    conn.reply_when_done(frame, "chat.ack", chat_writer.queue_message(
        conn.resources, conn.user_id, frame, to_user_id=frame.to_user_id,
        conversation_id=frame.conversation_id))


@frame_handler("chat.read", ChatReadFrame)
async def on_chat_read(conn: Connection, frame: ChatReadFrame) -> None:
    await chat.mark_read(conn.resources, conn.user_id, frame.conversation_id, frame.seq)


@frame_handler("chat.typing", ChatTypingFrame)
async def on_chat_typing(conn: Connection, frame: ChatTypingFrame) -> None:
    await chat.relay_typing(conn.resources, conn.user_id, frame.conversation_id)


@frame_handler("chat.recall", ChatRecallFrame)
async def on_chat_recall(conn: Connection, frame: ChatRecallFrame) -> None:
    await chat.recall_message(conn.resources, conn.user_id, frame.conversation_id, frame.seq)
