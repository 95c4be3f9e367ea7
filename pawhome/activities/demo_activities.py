"""Demo activities for `make run`: a free meetup of the first demo merchant with the demo
buyers registered (one checked in), and the platform's paid vaccination day, both published,
so the console's activities page and the mini-program's list have something to show.
Idempotent: a merchant with activities gets no more."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityEvent, ActivityRegistration
from models.base import utcnow
from pawhome.activities import registrations

FORM = [{"key": "pet_name", "label": "宠物名", "type": "text", "required": True, "options": []},
        {"key": "phone", "label": "手机号", "type": "phone", "required": True, "options": []}]


def _activity(organiser_id: int, merchant_id: int | None, start: dt.datetime,
              **terms: object) -> Activity:
    now = utcnow()
    values: dict[str, object] = {
        "organiser_id": organiser_id, "merchant_id": merchant_id, "kind": "meetup",
        "description": "", "cover_url": "", "place_address": "", "start_at": start,
        "end_at": start + dt.timedelta(hours=3), "registration_opens_at": now,
        "registration_closes_at": start, "cancel_deadline_at": start - dt.timedelta(hours=24),
        "waitlist_enabled": True, "price_type": "free", "price": 0, "form_fields": FORM,
        "status": "published", "seats_taken": 0, "waitlisted": 0, "checked_in": 0,
        "cancel_reason": "", "published_at": now, "created_at": now, "updated_at": now,
        **terms}
    return Activity(**values)


async def seed_demo_activities(session: AsyncSession, merchant_id: int, admin_id: int,
                               buyers: list[int]) -> int:
    if (await session.execute(select(Activity.id).where(
            Activity.merchant_id == merchant_id).limit(1))).first() is not None:
        return 0
    soon = utcnow().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=5)
    meetup = _activity(merchant_id, merchant_id, soon, title="周末狗狗公园聚会",
                       description="带上狗狗来深圳湾公园认识新朋友，现场有免费零食和拍照。",
                       place_name="深圳湾公园", place_address="深圳市南山区滨海大道",
                       lat=22.5114, lng=113.9510, capacity=20)
    vaccination = _activity(admin_id, None, soon + dt.timedelta(days=2),
                            kind="vaccination_day", title="社区猫狗疫苗日",
                            description="合作医院的医生现场接种狂犬疫苗，请携带宠物免疫证。",
                            place_name="福田社区服务中心", place_address="深圳市福田区福华路",
                            lat=22.5410, lng=114.0570, capacity=50, price_type="cash",
                            price=3000, form_fields=FORM[:1])
    session.add_all([meetup, vaccination])
    await session.flush()
    for activity in (meetup, vaccination):
        session.add(ActivityEvent(activity_id=activity.id, action="publish",
                                  from_status="draft", to_status="published",
                                  actor_type="admin" if activity.merchant_id is None
                                  else "merchant", actor_id=activity.organiser_id))
    for n, user_id in enumerate(buyers):
        checked = n == 0
        registration = ActivityRegistration(
            activity_id=meetup.id, user_id=user_id, live_user_id=user_id,
            status="checked_in" if checked else "confirmed", price_type="free", amount=0,
            payment_status="none", answers={"pet_name": ["旺财", "咪咪"][n % 2],
                                             "phone": f"1380013800{n}"},
            check_in_code=registrations.new_code(), confirmed_at=utcnow(),
            checked_in_at=utcnow() if checked else None)
        session.add(registration)
        await session.flush()
        session.add(ActivityEvent(activity_id=meetup.id, registration_id=registration.id,
                                  action="register", to_status="confirmed",
                                  actor_type="user", actor_id=user_id))
        meetup.seats_taken += 1
        meetup.checked_in += int(checked)
    return 2 + len(buyers)
