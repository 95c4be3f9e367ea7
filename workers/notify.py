"""Tasks of the notify queue: pushes to users' live connections, WeChat access-token upkeep.

WeChat subscribe messages for offline users will join this module.
"""
from __future__ import annotations

from typing import Any

from workers import runtime
from workers.base import PERIODIC
from workers.celery_app import celery_app


@celery_app.task(name="notify.push_to_user")
def push_to_user(user_id: int, event_type: str, data: Any) -> int:
    """Publish an event to a user's live connections; returns gateway processes reached."""
    from pawhome.events import publish_to_user

    return runtime.run(publish_to_user(runtime.resources().cache, user_id, event_type, data))


@celery_app.task(name="notify.refresh_wechat_token", **PERIODIC)
def refresh_wechat_token() -> None:
    """Refresh the shared WeChat access_token if it is close to expiry (single flight).

    Run every minute by beat; the next tick is its retry.
    """
    from pawhome.wechat import WeChatClient  # imported lazily: the WeChat module is optional here

    async def refresh() -> None:
        await WeChatClient(runtime.resources()).refresh_token_if_due()

    runtime.run(refresh())
