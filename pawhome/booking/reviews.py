"""Appointment reviews: once an appointment is completed its user reviews it once (a rating of
1 to 5, text, up to 9 photos, optionally anonymous); the provider's owner (or an admin)
replies once. docs/booking.md ("Reviews").

A review is written `pending` and moderated like the mall's product reviews, by the same code
(pawhome/moderation/appointment_reviews.py connects `review_submitted`); `set_status` is the
one place its status changes. A review counts in its provider's and its staff member's
rating (`rating_count` / `rating_sum`) exactly while it is `visible`: the transaction that
publishes it adds it, the one that holds or takes it down takes it out, each after locking
the provider row and then the staff row, so concurrent changes add up. The counts per star
are counted from the visible reviews themselves, so they always equal the public list.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.booking import Appointment, Provider, Staff
from models.booking_reviews import AppointmentReview
from pawhome.booking import booking_cache
from pawhome.booking.catalogue import rating_view
from pawhome.mall import reviews as mall_reviews
from pawhome.media.uploads import require_ready
from pawhome.messaging import notifications
from pawhome.platform.db import run_transaction
from pawhome.platform.errors import (
    AppointmentAlreadyReviewed,
    AppointmentNotReviewable,
    AppointmentReviewReplyExists,
    AppointmentReviewStateConflict,
    NotFound,
    field_error,
)
from pawhome.platform.hooks import Hook
from pawhome.platform.pagination import PageQuery, page_result
from pawhome.platform.resources import Resources
from pawhome.platform.wordfilter import screen_text
from settings import Settings

TARGET = "booking_review"  # notifications' and moderation checks' target_type (<= 16)
ReplyBody = mall_reviews.ReplyBody
ReviewsQuery = mall_reviews.ProductReviewsQuery

# Run in the transaction that writes a review, with (session, review_id): moderation
# connects its review task (pawhome/moderation/appointment_reviews.py).
review_submitted: Hook[[AsyncSession, int]] = Hook("booking.review_submitted")


class AppointmentReviewBody(mall_reviews.ReviewFields):
    """POST /v1/appointments/{id}/reviews: rating 1-5, text, the caller's ready images."""


class MyAppointmentReviewsQuery(PageQuery):
    pass


# -- writing --------------------------------------------------------------------------------------


async def submit_review(resources: Resources, user_id: int, appointment_id: int,
                        body: AppointmentReviewBody) -> dict[str, Any]:
    """The user reviews their completed appointment, once. Another user's appointment is 404;
    one not completed, 409 AppointmentNotReviewable; reviewed already, 409
    AppointmentAlreadyReviewed (two submits at once: the appointment row lock queues them,
    and the unique appointment key backs it). The review is pending until moderation."""
    screen_text(body.text, "text")

    async def work(session: AsyncSession) -> dict[str, Any]:
        appointment = (await session.execute(select(Appointment).where(
            Appointment.id == appointment_id).with_for_update())).scalar_one_or_none()
        if appointment is None or appointment.user_id != user_id:
            raise NotFound("No such appointment")
        if appointment.status != "completed":
            raise AppointmentNotReviewable(
                f"The appointment is {appointment.status}: only a completed one can be "
                "reviewed", errors=[field_error("status", appointment.status)])
        if await _review_of(session, appointment.id) is not None:
            raise AppointmentAlreadyReviewed(errors=[field_error("appointment_id",
                                                                 "reviewed already")])
        await require_ready(session, user_id, body.media_ids, kind="image")
        review = AppointmentReview(
            appointment_id=appointment.id, user_id=user_id,
            provider_id=appointment.provider_id, merchant_id=appointment.owner_id,
            staff_id=appointment.staff_id, service_id=appointment.service_id,
            rating=body.rating, text=body.text, media_ids=list(body.media_ids),
            has_images=bool(body.media_ids), anonymous=body.anonymous, status="pending")
        session.add(review)
        await session.flush()
        await review_submitted.run(session, review.id)
        return (await _views(session, resources.settings, [review], public=False,
                             reveal=True))[0]

    # A duplicate key (reviewed meanwhile) reruns the work, which then finds the review.
    return await run_transaction(resources.db, work)


async def _review_of(session: AsyncSession, appointment_id: int) -> AppointmentReview | None:
    return (await session.execute(select(AppointmentReview).where(
        AppointmentReview.appointment_id == appointment_id))).scalar_one_or_none()


async def lock_review(session: AsyncSession, review_id: int) -> AppointmentReview:
    review: AppointmentReview = await mall_reviews.lock_review(session, review_id,
                                                               AppointmentReview)
    return review


async def _add_to_rating(session: AsyncSession, review: AppointmentReview, sign: int) -> None:
    """Add (+1) or take out (-1) a review from its provider's and staff member's rating,
    each row locked first (provider, then staff: one order for every writer)."""
    for table, row_id in ((Provider, review.provider_id), (Staff, review.staff_id)):
        if row_id is None:
            continue
        await session.execute(select(table.id).where(table.id == row_id).with_for_update())
        await session.execute(update(table).where(table.id == row_id).values(
            rating_count=table.rating_count + sign,
            rating_sum=table.rating_sum + sign * review.rating)
            .execution_options(synchronize_session=False))
    review.counted = sign > 0


async def set_status(session: AsyncSession, review: AppointmentReview, status: str,
                     reason: str = "") -> None:
    """Move a locked review to `status` (moderation's verdicts, the admins' decisions),
    keeping the ratings exact: it counts while visible. The provider's owner hears of a
    review the first time it is published. Caller commits, then `forget_provider`."""
    async def add(sign: int) -> None:
        await _add_to_rating(session, review, sign)

    if await mall_reviews.move_status(review, status, reason, add):
        await notifications.notify(
            session, review.merchant_id, "appointment", "review_received",
            target_type=TARGET, target_id=review.id,
            payload={"title": "新的评价", "provider_id": review.provider_id,
                     "appointment_id": review.appointment_id, "rating": review.rating,
                     "text": f"你的预约服务收到 {review.rating} 星评价"})


async def forget_provider(resources: Resources, provider_id: int) -> None:
    """After a commit that changed a provider's rating: the cached catalogue (service lists
    sorted by rating, provider pages) shows the new one."""
    del provider_id  # the catalogue is cached under one generation
    await booking_cache.forget(resources.cache, catalogue=True)


async def reply(resources: Resources, review_id: int, *, actor_id: int, role: str,
                body: mall_reviews.ReplyBody) -> dict[str, Any]:
    """The provider's owner (or an admin) replies once to a published review; the user is
    told. Another merchant's review is 404; a second reply 409 AppointmentReviewReplyExists;
    a review not published 409 AppointmentReviewStateConflict."""
    screen_text(body.text, "text")
    async with resources.db.session() as session, session.begin():
        review = await lock_review(session, review_id)
        if role != "admin" and review.merchant_id != actor_id:
            raise NotFound("No such review")
        if review.reply_by is not None:
            raise AppointmentReviewReplyExists(errors=[field_error("text", "replied already")])
        if review.status != "visible":
            raise AppointmentReviewStateConflict(
                f"The review is {review.status}: only a published review can be replied to",
                errors=[field_error("status", review.status)])
        review.reply_text, review.reply_by = body.text, actor_id
        review.replied_at = utcnow()
        view = (await _views(session, resources.settings, [review], public=False,
                             reveal=role == "admin"))[0]
        await notifications.notify(
            session, review.user_id, "appointment", "review_replied", actor_id=actor_id,
            target_type=TARGET, target_id=review.id,
            payload={"title": "商家回复了你的评价", "provider_id": review.provider_id,
                     "appointment_id": review.appointment_id, "text": body.text[:100]})
        return view


# -- reading --------------------------------------------------------------------------------------


async def _views(session: AsyncSession, settings: Settings, rows: list[AppointmentReview], *,
                 public: bool, reveal: bool = False) -> list[dict[str, Any]]:
    views = await mall_reviews.review_views(session, settings, rows, public=public,
                                            reveal=reveal)
    for view, row in zip(views, rows, strict=True):
        view.update({"appointment_id": row.appointment_id, "provider_id": row.provider_id,
                     "staff_id": row.staff_id, "service_id": row.service_id})
    return views


async def _stars(session: AsyncSession, subject: Any) -> dict[str, Any]:
    """The counts per star and with photos of the visible reviews matching `subject`."""
    visible = [subject, AppointmentReview.status == "visible"]
    rows = (await session.execute(select(AppointmentReview.rating, func.count()).where(
        *visible).group_by(AppointmentReview.rating))).all()
    per_star = {int(rating): int(n) for rating, n in rows}
    with_images = (await session.execute(select(func.count()).select_from(
        AppointmentReview).where(*visible, AppointmentReview.has_images.is_(True)))
    ).scalar_one()
    return {"stars": {str(n): per_star.get(n, 0) for n in range(1, 6)},
            "with_images": int(with_images)}


async def _reviews_page(resources: Resources, viewer_id: int | None, row: Provider | Staff,
                        subject: Any, query: ReviewsQuery) -> dict[str, Any]:
    async with resources.db.session() as session:
        rows, total = await mall_reviews.published_reviews(session, AppointmentReview,
                                                           subject, viewer_id, query)
        items = await _views(session, resources.settings, rows, public=True)
        summary = {**rating_view(row.rating_count, row.rating_sum),
                   **await _stars(session, subject)}
    page = page_result(items, total, query)
    page["summary"] = summary
    return page


async def provider_reviews(resources: Resources, viewer_id: int | None, provider_id: int,
                           query: ReviewsQuery) -> dict[str, Any]:
    """GET /v1/providers/{id}/reviews: published reviews, newest first, filtered by rating
    or photos, with the rating summary; reviews across a block with the viewer left out."""
    async with resources.db.session() as session:
        provider = await session.get(Provider, provider_id)
    if provider is None or provider.status != "active":
        raise NotFound("No such provider")
    return await _reviews_page(resources, viewer_id, provider,
                               AppointmentReview.provider_id == provider_id, query)


async def staff_reviews(resources: Resources, viewer_id: int | None, staff_id: int,
                        query: ReviewsQuery) -> dict[str, Any]:
    """GET /v1/staff/{id}/reviews: the published reviews of appointments with one staff
    member, as a provider's."""
    async with resources.db.session() as session:
        staff = await session.get(Staff, staff_id)
        provider = await session.get(Provider, staff.provider_id) if staff else None
    if staff is None or not staff.active or provider is None or provider.status != "active":
        raise NotFound("No such staff member")
    return await _reviews_page(resources, viewer_id, staff,
                               AppointmentReview.staff_id == staff_id, query)


async def my_reviews(resources: Resources, user_id: int,
                     query: MyAppointmentReviewsQuery) -> dict[str, Any]:
    """The caller's appointment reviews in every state, newest first."""
    async with resources.db.session() as session:
        condition = AppointmentReview.user_id == user_id
        total = (await session.execute(select(func.count()).select_from(AppointmentReview)
                                       .where(condition))).scalar_one()
        rows = list((await session.execute(
            select(AppointmentReview).where(condition).order_by(AppointmentReview.id.desc())
            .offset(query.offset).limit(query.limit))).scalars())
        items = await _views(session, resources.settings, rows, public=False, reveal=True)
    return page_result(items, int(total), query)


async def review_of_appointment(session: AsyncSession, settings: Settings,
                                appointment: Appointment, viewer_id: int,
                                role: str) -> dict[str, Any] | None:
    """The appointment's review as its detail shows it: in full to its author and admins;
    to the provider's owner once published (as the public sees it, plus its status)."""
    review = await _review_of(session, appointment.id)
    if review is None:
        return None
    if viewer_id == appointment.user_id or role == "admin":
        return (await _views(session, settings, [review], public=False, reveal=True))[0]
    if review.status != "visible":
        return None
    return {**(await _views(session, settings, [review], public=True))[0],
            "status": review.status}
