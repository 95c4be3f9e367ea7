"""Activity test helpers: an organiser's activity created (and published) through the API,
registrants, and the rows as committed."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from models.activities import Activity, ActivityRegistration
from models.realtime import Notification
from tests.helpers import Session
from tests.mall_support import make_member

PHONE_FORM = [{"key": "pet_name", "label": "宠物名", "type": "text", "required": True},
              {"key": "phone", "label": "手机号", "type": "phone", "required": True},
              {"key": "size", "label": "体型", "type": "choice",
               "options": ["小型", "中型", "大型"]}]
ANSWERS = {"pet_name": "旺财", "phone": "13800138000", "size": "中型"}


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def later(**delta: float) -> str:
    """An aware ISO time this far from now."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat()


def activity_body(**overrides: Any) -> dict[str, Any]:
    body = {"kind": "meetup", "title": "周末狗狗聚会 " + uuid.uuid4().hex[:4],
            "description": "带上你的狗狗来公园玩", "cover_url": "https://img.example.com/a.jpg",
            "place_name": "深圳湾公园", "place_address": "深圳市南山区滨海大道",
            "lat": 22.51, "lng": 113.95, "start_at": later(days=3),
            "end_at": later(days=3, hours=3), "capacity": 5}
    body.update(overrides)
    return body


async def organiser(resources, role: str = "merchant") -> Session:
    return await make_member(resources, role)


async def create(api, owner: Session, **overrides: Any) -> dict[str, Any]:
    return (await api.post("/v1/merchant/activities", json=activity_body(**overrides),
                           token=owner.token)).ok(201)


async def published(api, owner: Session, **overrides: Any) -> dict[str, Any]:
    made = await create(api, owner, **overrides)
    return (await api.post(f"/v1/merchant/activities/{made['id']}/publish",
                           token=owner.token)).ok()


async def register(api, user: Session, activity_id: int, answers: dict | None = None,
                   headers: dict | None = None):
    return await api.post(f"/v1/activities/{activity_id}/registrations",
                          json={"answers": answers or {}}, token=user.token,
                          headers=headers or key())


async def activity_row(resources, activity_id: int) -> Activity:
    async with resources.db.session() as session:
        return await session.get(Activity, activity_id)


async def registrations_of(resources, activity_id: int) -> list[ActivityRegistration]:
    async with resources.db.session() as session:
        return list((await session.execute(select(ActivityRegistration).where(
            ActivityRegistration.activity_id == activity_id)
            .order_by(ActivityRegistration.id))).scalars())


async def activity_notifications(resources, user_id: int) -> list[Notification]:
    async with resources.db.session() as session:
        return list((await session.execute(select(Notification).where(
            Notification.user_id == user_id, Notification.category == "activity")
            .order_by(Notification.id))).scalars())
