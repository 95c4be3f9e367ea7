"""What activities and registrations look like, and the public reads: published activities
that have not ended (soonest first, or nearest first around a point), one activity with the
viewer's own registration. Times are shown in Asia/Shanghai with their offset.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.activities import Activity, ActivityEvent, ActivityRegistration
from models.base import utcnow
from models.mall import Merchant
from models.users import User
from pawhome.activities import forms, states
from pawhome.booking.catalogue_views import haversine_km
from pawhome.booking.slots import iso_local
from pawhome.mall.product_rendering import image_view, media_by_id
from pawhome.platform.errors import ActivityInvalid, ActivityNotFound, field_error
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from settings import Settings

MAX_SCAN = 2000  # activities one near-me list considers (a city's worth)
KM_PER_DEGREE = 111.0
PLATFORM_NAME = "PAWHome 官方"


class ActivitiesQuery(PageQuery):
    kind: forms.ActivityKind | None = None
    lat: float | None = Field(None, ge=-90, le=90, description="with lng: nearest first")
    lng: float | None = Field(None, ge=-180, le=180)
    radius_km: float = Field(50, gt=0, le=500, description="with lat and lng")


NEAR_RULES = {"lat": "given together with lng", "lng": "given together with lat"}


def local_time(value: dt.datetime | None) -> str | None:
    return iso_local(value) if value is not None else None


def registration_open(activity: Activity, now: dt.datetime) -> bool:
    return (activity.status == "published"
            and activity.registration_opens_at <= now < activity.registration_closes_at)


def activity_view(settings: Settings, activity: Activity, cover: Any,
                  organiser_name: str) -> dict[str, Any]:
    now = utcnow()
    cover_view = image_view(settings, cover) if cover is not None else None
    if cover_view is None and activity.cover_url:
        cover_view = {"media_id": None, "url": activity.cover_url,
                      "thumb_url": activity.cover_url, "width": None, "height": None}
    return {
        "id": activity.id, "kind": activity.kind, "kind_label": forms.KINDS[activity.kind],
        "title": activity.title, "description": activity.description,
        "cover": cover_view, "cover_media_id": activity.cover_media_id,
        "cover_url": activity.cover_url,
        "place": {"name": activity.place_name, "address": activity.place_address,
                  "lat": float(activity.lat), "lng": float(activity.lng)},
        "start_at": local_time(activity.start_at), "end_at": local_time(activity.end_at),
        "registration_opens_at": local_time(activity.registration_opens_at),
        "registration_closes_at": local_time(activity.registration_closes_at),
        "cancel_deadline_at": local_time(activity.cancel_deadline_at),
        "capacity": activity.capacity, "seats_taken": activity.seats_taken,
        "seats_left": max(0, activity.capacity - activity.seats_taken),
        "waitlist_enabled": activity.waitlist_enabled, "waitlisted": activity.waitlisted,
        "checked_in": activity.checked_in,
        "price_type": activity.price_type, "price": activity.price,
        "form_fields": activity.form_fields or [],
        "status": activity.status, "registration_open": registration_open(activity, now),
        "organiser": {"merchant_id": activity.merchant_id, "name": organiser_name},
        "cancel_reason": activity.cancel_reason,
        "published_at": local_time(activity.published_at),
        "created_at": local_time(activity.created_at),
        "updated_at": local_time(activity.updated_at),
    }


async def organiser_names(session: AsyncSession, activities: list[Activity]) -> dict[int, str]:
    """The merchants' shop names (a merchant without a shop row yet: their nickname)."""
    ids = {a.merchant_id for a in activities if a.merchant_id}
    if not ids:
        return {}
    names = {m.user_id: m.name for m in (await session.execute(
        select(Merchant).where(Merchant.user_id.in_(ids)))).scalars()}
    missing = ids - set(names)
    if missing:
        names.update({user_id: nickname or f"店铺{user_id}" for user_id, nickname in
                      (await nicknames(session, missing)).items()})
    return names


async def activity_views(session: AsyncSession, settings: Settings,
                         activities: list[Activity]) -> list[dict[str, Any]]:
    covers = await media_by_id(session, [a.cover_media_id for a in activities])
    names = await organiser_names(session, activities)
    return [activity_view(settings, a, covers.get(a.cover_media_id or 0),
                          names.get(a.merchant_id, "") if a.merchant_id else PLATFORM_NAME)
            for a in activities]


def registration_view(registration: ActivityRegistration, *,
                      with_code: bool = True) -> dict[str, Any]:
    """A registration as its user (with the check-in code) or the organiser sees it."""
    view = {
        "id": registration.id, "activity_id": registration.activity_id,
        "user_id": registration.user_id, "status": registration.status,
        "price_type": registration.price_type, "amount": registration.amount,
        "payment_status": registration.payment_status,
        "pay_deadline": local_time(registration.pay_deadline),
        "answers": registration.answers or {},
        "cancel_reason": registration.cancel_reason,
        "confirmed_at": local_time(registration.confirmed_at),
        "checked_in_at": local_time(registration.checked_in_at),
        "cancelled_at": local_time(registration.cancelled_at),
        "created_at": local_time(registration.created_at),
    }
    if with_code:
        view["check_in_code"] = registration.check_in_code
    return view


async def waitlist_position(session: AsyncSession, registration: ActivityRegistration) -> int:
    """1 for the next to be promoted."""
    ahead = (await session.execute(select(func.count()).select_from(ActivityRegistration).where(
        ActivityRegistration.activity_id == registration.activity_id,
        ActivityRegistration.status == "waitlisted",
        ActivityRegistration.id < registration.id))).scalar_one()
    return int(ahead) + 1


async def user_registration_view(session: AsyncSession,
                                 registration: ActivityRegistration) -> dict[str, Any]:
    view = registration_view(registration)
    view["waitlist_position"] = (await waitlist_position(session, registration)
                                 if registration.status == "waitlisted" else None)
    timeline = (await session.execute(select(ActivityEvent).where(
        ActivityEvent.registration_id == registration.id).order_by(ActivityEvent.id))).scalars()
    view["timeline"] = [event_view(e) for e in timeline]
    return view


def event_view(event: ActivityEvent) -> dict[str, Any]:
    return {"action": event.action, "from_status": event.from_status,
            "to_status": event.to_status, "actor_type": event.actor_type,
            "actor_id": event.actor_id, "reason": event.reason,
            "at": local_time(event.created_at)}


async def nicknames(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    return {row.id: row.nickname or "" for row in (await session.execute(
        select(User.id, User.nickname).where(User.id.in_(user_ids)))).all()}


# -- the public reads -------------------------------------------------------------------------


def _public(activity_id: int) -> Any:
    return and_(Activity.id == activity_id, Activity.status.in_(("published", "finished",
                                                                 "cancelled")))


async def list_published(resources: Resources, query: ActivitiesQuery) -> dict[str, Any]:
    """Published activities that have not ended: soonest first, or with lat and lng those
    within radius_km, nearest first."""
    if (query.lat is None) != (query.lng is None):
        missing = "lng" if query.lng is None else "lat"
        raise ActivityInvalid(errors=[field_error(missing, "lat and lng go together")])
    now = utcnow()
    conditions: list[Any] = [Activity.status == "published", Activity.end_at > now]
    if query.kind:
        conditions.append(Activity.kind == query.kind)
    async with resources.db.session() as session:
        if query.lat is None or query.lng is None:
            total = (await session.execute(select(func.count()).select_from(Activity)
                                           .where(*conditions))).scalar_one()
            rows = list((await session.execute(
                select(Activity).where(*conditions).order_by(Activity.start_at, Activity.id)
                .offset(query.offset).limit(query.limit))).scalars())
            items = await activity_views(session, resources.settings, rows)
            return page_result(items, int(total), query)
        point = (query.lat, query.lng)
        lat_span = query.radius_km / KM_PER_DEGREE
        conditions += [Activity.lat.between(query.lat - lat_span, query.lat + lat_span)]
        candidates = list((await session.execute(
            select(Activity).where(*conditions).order_by(Activity.start_at, Activity.id)
            .limit(MAX_SCAN))).scalars())
        near = sorted(((haversine_km(point, (float(a.lat), float(a.lng))), a)
                       for a in candidates), key=lambda pair: (pair[0], pair[1].start_at,
                                                               pair[1].id))
        near = [(d, a) for d, a in near if d <= query.radius_km]
        page = near[query.offset:query.offset + query.limit]
        views = await activity_views(session, resources.settings, [a for _, a in page])
        for view, (distance, _) in zip(views, page, strict=True):
            view["distance_km"] = round(distance, 3)
        return page_result(views, len(near), query)


async def get_public(resources: Resources, activity_id: int,
                     viewer_id: int | None) -> dict[str, Any]:
    """A published (or since finished or cancelled) activity; a draft is not found. With a
    logged-in viewer, `my_registration`: their live or latest registration."""
    async with resources.db.session() as session:
        activity = (await session.execute(select(Activity).where(
            _public(activity_id)))).scalar_one_or_none()
        if activity is None:
            raise ActivityNotFound()
        [view] = await activity_views(session, resources.settings, [activity])
        view["my_registration"] = None
        if viewer_id is not None:
            mine = (await session.execute(select(ActivityRegistration).where(
                ActivityRegistration.activity_id == activity_id,
                ActivityRegistration.user_id == viewer_id)
                .order_by(ActivityRegistration.id.desc()).limit(1))).scalar_one_or_none()
            if mine is not None:
                view["my_registration"] = registration_view(mine)
                view["my_registration"]["live"] = mine.status in states.LIVE
        return view
