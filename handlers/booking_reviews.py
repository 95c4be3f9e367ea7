"""Appointment reviews: the user reviews a completed appointment once and lists their
reviews; anyone reads a provider's (or a staff member's) published reviews; the provider's
owner (or an admin) replies once; admins publish held reviews or take reviews down.

Thin: each calls one function of pawhome/booking/reviews.py or
pawhome/moderation/appointment_reviews.py; docs/booking.md "Reviews".
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from handlers.orders import ReasonBody
from pawhome.booking import reviews
from pawhome.moderation import appointment_reviews
from pawhome.platform.errors import (
    AppointmentAlreadyReviewed,
    AppointmentNotReviewable,
    AppointmentReviewReplyExists,
    AppointmentReviewStateConflict,
    SensitiveContent,
    ValidationFailed,
)

TAGS = ("booking",)
SELLERS = ("merchant", "admin")
ADMIN = ("admin",)


class AppointmentReviewsHandler(ApiHandler):
    @endpoint(body=reviews.AppointmentReviewBody, tags=TAGS, status=201,
              errors=(AppointmentNotReviewable, AppointmentAlreadyReviewed, ValidationFailed,
                      SensitiveContent),
              summary="Review the caller's completed appointment once (rating 1-5, text, up "
                      "to 9 photos); published once moderation passes it",
              refuses={"media_ids": "the caller's ready images",
                       "text": "no prohibited words"})
    async def post(self, appointment_id: int) -> None:
        self.ok(await reviews.submit_review(self.r, self.user_id, appointment_id, self.body),
                status=201)


class ProviderReviewsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=reviews.ReviewsQuery, tags=TAGS,
              summary="A provider's published reviews, newest first (filter by rating or "
                      "photos), with its rating summary and counts per star")
    async def get(self, provider_id: int) -> None:
        self.ok(await reviews.provider_reviews(self.r, self.viewer_id, provider_id,
                                               self.query))


class StaffReviewsHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, query=reviews.ReviewsQuery, tags=TAGS,
              summary="The published reviews of a staff member's appointments, newest first, "
                      "with their rating summary")
    async def get(self, staff_id: int) -> None:
        self.ok(await reviews.staff_reviews(self.r, self.viewer_id, staff_id, self.query))


class MyAppointmentReviewsHandler(ApiHandler):
    @endpoint(query=reviews.MyAppointmentReviewsQuery, tags=TAGS,
              summary="The caller's appointment reviews in every state, newest first")
    async def get(self) -> None:
        self.ok(await reviews.my_reviews(self.r, self.user_id, self.query))


class AppointmentReviewReplyHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=reviews.ReplyBody, tags=("merchant", "booking"),
              errors=(AppointmentReviewStateConflict, AppointmentReviewReplyExists,
                      SensitiveContent),
              refuses={"text": "no prohibited words"},
              summary="Reply once to a published review of the merchant's provider (the "
                      "user is told)")
    async def post(self, review_id: int) -> None:
        self.ok(await reviews.reply(self.r, review_id, actor_id=self.user_id,
                                    role=self.caller.role, body=self.body))


class AdminAppointmentReviewApproveHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=("admin",), errors=(AppointmentReviewStateConflict,),
              summary="Publish an appointment review held for review (or removed): it counts "
                      "in the provider's and the staff member's rating")
    async def post(self, review_id: int) -> None:
        self.ok(await appointment_reviews.approve_review(self.r, self.user_id, review_id))


class AdminAppointmentReviewRejectHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=ReasonBody, tags=("admin",),
              errors=(AppointmentReviewStateConflict,),
              summary="Take an appointment review down with a reason its author sees; it "
                      "leaves the ratings")
    async def post(self, review_id: int) -> None:
        self.ok(await appointment_reviews.reject_review(self.r, self.user_id, review_id,
                                                        self.body.reason))
