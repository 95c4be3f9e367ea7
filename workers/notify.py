"""Tasks of the notify queue: pushes to users' live connections, WeChat access-token upkeep,
and WeChat subscribe messages to users who stayed offline (pawhome/messaging/subscribe_messages.py).
"""
from __future__ import annotations

from typing import Any

from celery import shared_task

from pawhome.integrations.wechat import WeChatClient
from pawhome.messaging import subscribe_messages
from pawhome.platform.events import publish_to_user
from workers import runtime
from workers.base import PERIODIC, TransientError


@shared_task(name="notify.push_to_user")
def push_to_user(user_id: int, event_type: str, data: Any) -> tuple[str, int]:
    """Store an event in the user's stream and publish it to their live connections; returns
    the event's (epoch, eid)."""
    return runtime.run(publish_to_user(runtime.resources().cache, user_id, event_type, data))


@shared_task(name="notify.refresh_wechat_token", **PERIODIC)
def refresh_wechat_token() -> None:
    """Refresh the shared WeChat access_token if it is close to expiry (single flight).

    Run every minute by beat; the next tick is its retry.
    """
    async def refresh() -> None:
        await WeChatClient(runtime.resources()).refresh_token_if_due()

    runtime.run(refresh())


@shared_task(name="notify.send_subscribe_message", bind=True)
def send_subscribe_message(self, user_id: int, reason: str, conversation_id: int | None = None,
                           notification_id: int | None = None,
                           push_id: str | None = None) -> str:
    """Send one WeChat subscribe message if the user is still offline and has an
    authorisation left (scheduled by subscribe_messages.schedule_push with the grace period
    as countdown). Returns the outcome: sent, failed, skipped or duplicate.

    43101/47003 are final (no retry); WeChat outages and rate limits retry with backoff. The
    push_id keeps a retried or redelivered push from spending or sending twice.
    """
    final_attempt = int(self.request.retries or 0) >= int(self.max_retries or 0)
    try:
        outcome = runtime.run(subscribe_messages.deliver(
            runtime.resources(), user_id, reason, conversation_id=conversation_id,
            notification_id=notification_id, push_id=push_id or self.request.id,
            final_attempt=final_attempt))
    except subscribe_messages.TransientSendError as error:
        raise TransientError(str(error)) from error
    return outcome.status
