"""The staff live topics the web console watches over the WebSocket hub (`sub {topic}`):
`staff:moderation` (items joining the queue, decisions) and `staff:orders` (every order's
status changes), both for admins only. A merchant's console needs no staff topic: the
`order.status` events of its shop's orders already reach the merchant user's own stream."""
from __future__ import annotations

from models.users import User
from pawhome.mall.order_states import STAFF_ORDERS_TOPIC
from pawhome.moderation.reviews import STAFF_MODERATION_TOPIC
from pawhome.platform import topics
from pawhome.platform.errors import NotFound
from pawhome.platform.resources import Resources

ADMIN_TOPICS = {topic.split(":", 1)[1] for topic in (STAFF_MODERATION_TOPIC, STAFF_ORDERS_TOPIC)}


async def _may_watch_staff_topic(resources: Resources, user_id: int, topic_id: str) -> bool:
    if topic_id not in ADMIN_TOPICS:
        raise NotFound("Unknown topic")
    async with resources.db.session() as session:
        user = await session.get(User, user_id)
    return user is not None and user.role == "admin" and user.status == "active"


topics.register_topic_kind("staff", _may_watch_staff_topic)
