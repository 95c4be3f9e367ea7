"""Client frames of the WebSocket protocol: the registry, and the core frames every socket has.

A client frame is a pydantic model (`ClientFrame`: unknown fields refused, `ref` echoed)
registered with its handler by `@frame_handler(type, Model)`; a handler is a function of
(Connection, frame), plain or async. The core frames — ping, ack, resume, auth.refresh, sub,
unsub — live here; domain frames live in handlers/ (imported through handlers/realtime.py).
docs/realtime.md lists them all.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pawhome.identity.tokens import decode_access_token, ensure_not_revoked
from pawhome.platform import errors, topics

if TYPE_CHECKING:
    from gateway.ws_connection import Connection


class ClientFrame(BaseModel):
    """Base of every client frame: `type`, and `ref`, echoed in the reply or error."""
    model_config = ConfigDict(extra="forbid")
    type: str
    ref: str | None = Field(default=None, max_length=64)


FrameModel = TypeVar("FrameModel", bound=ClientFrame)
FrameCallable = Callable[["Connection", Any], Awaitable[None] | None]
FRAME_HANDLERS: dict[str, tuple[type[ClientFrame], FrameCallable]] = {}


def frame_handler(frame_type: str, model: type[ClientFrame]) -> Callable[[FrameCallable],
                                                                          FrameCallable]:
    """Register the handler of one client frame type (a function of (conn, frame))."""
    if not issubclass(model, ClientFrame):
        raise TypeError(f"{model.__name__} must inherit gateway.ws.ClientFrame")

    def register(function: FrameCallable) -> FrameCallable:
        if frame_type in FRAME_HANDLERS:
            raise ValueError(f"frame type {frame_type!r} registered twice")
        FRAME_HANDLERS[frame_type] = (model, function)
        return function

    return register


# -- core frames ------------------------------------------------------------------------------

TOPIC_PATTERN = re.compile(r"^[a-z][a-z_]{0,31}:[A-Za-z0-9_\-]{1,64}$")


class PingFrame(ClientFrame):
    pass


class AckFrame(ClientFrame):
    epoch: str | None = Field(default=None, max_length=64)
    last_event_id: int = Field(ge=0)


class ResumeFrame(ClientFrame):
    epoch: str | None = Field(default=None, max_length=64)
    last_event_id: int | None = Field(default=None, ge=0)


class AuthRefreshFrame(ClientFrame):
    token: str = Field(min_length=1, max_length=4096)


class TopicFrame(ClientFrame):
    topic: str = Field(min_length=3, max_length=100, pattern=TOPIC_PATTERN.pattern)


@frame_handler("ping", PingFrame)
def on_ping(conn: Connection, frame: PingFrame) -> None:
    conn.reply(frame, "pong")


@frame_handler("ack", AckFrame)
def on_ack(conn: Connection, frame: AckFrame) -> None:
    if frame.epoch == conn.epoch and frame.last_event_id <= conn.last_eid:
        conn.acked_eid = max(conn.acked_eid, frame.last_event_id)


@frame_handler("resume", ResumeFrame)
def on_resume(conn: Connection, frame: ResumeFrame) -> Awaitable[None] | None:
    # Without fields: nothing to replay, go live from hello's position (plus anything held).
    return conn.client_resume(frame.epoch, frame.last_event_id, frame.ref)


@frame_handler("auth.refresh", AuthRefreshFrame)
async def on_auth_refresh(conn: Connection, frame: AuthRefreshFrame) -> None:
    claims = decode_access_token(conn.settings, frame.token)
    if claims.user_id != conn.user_id:
        raise errors.TokenInvalid("The token belongs to another user")
    await ensure_not_revoked(conn.resources.cache, claims)
    conn.claims = claims
    conn._schedule_auth()
    conn.reply(frame, "auth.refreshed", expires_in=claims.expires_in)


@frame_handler("sub", TopicFrame)
async def on_sub(conn: Connection, frame: TopicFrame) -> None:
    if frame.topic not in (conn.topics or ()):
        if len(conn.topics or ()) >= conn.settings.ws_max_topics:
            raise errors.TooManyTopics(
                f"At most {conn.settings.ws_max_topics} live topics per connection")
        await topics.authorize(conn.resources, conn.user_id, frame.topic)
        if conn.closed:
            return
        if conn.topics is None:
            conn.topics = []
        conn.topics.append(frame.topic)
        await conn.hub.join_topic(conn, frame.topic)
    conn.reply(frame, "sub.ok", topic=frame.topic)


@frame_handler("unsub", TopicFrame)
def on_unsub(conn: Connection, frame: TopicFrame) -> None:
    if conn.topics and frame.topic in conn.topics:
        conn.topics.remove(frame.topic)
        conn.hub.leave_topic(conn, frame.topic)
    conn.reply(frame, "unsub.ok", topic=frame.topic)
