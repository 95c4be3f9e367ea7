"""Activities with registration (docs/activities.md). Users list and read published activities,
register (Idempotency-Key), pay, cancel and read their registrations; organisers — merchants
(their own) and admins (all; theirs are the platform's) — under /v1/merchant/activities, as
the mall's products and the booking providers are: create, edit, publish, cancel, list the
registrations and check registrants in by code. Thin: each calls one function of
pawhome/activities/.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.activities import forms, listing, organising, registrations
from pawhome.mall.products import Actor
from pawhome.platform.errors import (
    ActivityFull,
    ActivityInvalid,
    ActivityNotFound,
    ActivityStateConflict,
    ActivityTermsLocked,
    AlreadyCheckedInToActivity,
    AlreadyRegistered,
    CancellationDeadlinePassed,
    CheckInCodeUnknown,
    InsufficientPoints,
    PaymentAlreadyPaid,
    PaymentClosed,
    PaymentNotDue,
    RegistrationClosed,
    RegistrationFormInvalid,
    RegistrationNotFound,
    RegistrationStateConflict,
    SensitiveContent,
    WeChatPayUnavailable,
)

TAGS = ("activities",)
ORGANISERS = ("merchant", "admin")


def _actor(handler: ApiHandler) -> Actor:
    return Actor(handler.user_id, handler.caller.role)


# -- users -------------------------------------------------------------------------------------


class ActivitiesHandler(ApiHandler):
    @endpoint(auth=False, query=listing.ActivitiesQuery, tags=TAGS, errors=(ActivityInvalid,),
              refuses=listing.NEAR_RULES, links={"activity_id": "/items/0/id"},
              summary="Published activities that have not ended, soonest first; with lat and "
                      "lng, those within radius_km, nearest first")
    async def get(self) -> None:
        self.ok(await listing.list_published(self.r, self.query))


class ActivityHandler(ApiHandler):
    @endpoint(auth=False, viewer=True, tags=TAGS, errors=(ActivityNotFound,),
              summary="One activity: seats left, the waitlist, the registration form; "
                      "logged in, the caller's registration")
    async def get(self, activity_id: int) -> None:
        self.ok(await listing.get_public(self.r, activity_id, self.viewer_id))


class ActivityRegistrationsHandler(ApiHandler):
    @endpoint(body=forms.RegisterBody, tags=TAGS, status=201, idempotent=True,
              errors=(ActivityNotFound, RegistrationClosed, ActivityFull, AlreadyRegistered,
                      RegistrationFormInvalid, InsufficientPoints),
              refuses={**forms.ANSWER_RULES, "points": "a balance covering a points price"},
              links={"registration_id": "/id"},
              summary="Register: a seat (free or points: confirmed; cash: pending payment "
                      "until the deadline) or, when full, the waitlist if the activity has "
                      "one")
    async def post(self, activity_id: int) -> None:
        self.ok(await registrations.register(self.r, self.user_id, activity_id, self.body),
                status=201)


class MyRegistrationsHandler(ApiHandler):
    @endpoint(query=registrations.MyRegistrationsQuery, tags=TAGS,
              summary="The caller's registrations, newest first, with their check-in codes")
    async def get(self) -> None:
        self.ok(await registrations.my_registrations(self.r, self.user_id, self.query))


class MyRegistrationHandler(ApiHandler):
    @endpoint(tags=TAGS, errors=(RegistrationNotFound,),
              summary="One of the caller's registrations: its code, waitlist position, "
                      "payment and timeline")
    async def get(self, registration_id: int) -> None:
        self.ok(await registrations.my_registration(self.r, self.user_id, registration_id))


class RegistrationPayHandler(ApiHandler):
    @endpoint(tags=TAGS, errors=(RegistrationNotFound, PaymentNotDue, RegistrationStateConflict,
                                 PaymentAlreadyPaid, PaymentClosed, WeChatPayUnavailable),
              refuses={"openid": "the caller logged in with WeChat"},
              summary="wx.requestPayment's parameters for a pending cash registration, "
                      "payable until its deadline")
    async def post(self, registration_id: int) -> None:
        self.ok(await registrations.pay_registration(self.r, self.user_id, registration_id))


class RegistrationCancelHandler(ApiHandler):
    @endpoint(body=forms.ReasonBody, tags=TAGS, idempotent=True,
              errors=(RegistrationNotFound, RegistrationStateConflict,
                      CancellationDeadlinePassed),
              summary="Cancel the caller's registration before the deadline: cash refunded, "
                      "points returned, the seat to the waitlist")
    async def post(self, registration_id: int) -> None:
        self.ok(await registrations.cancel_registration(self.r, self.user_id, registration_id,
                                                        self.body))


# -- organisers ----------------------------------------------------------------------------------


class OrganiserActivitiesHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, query=organising.OrganiserActivitiesQuery, tags=TAGS,
              links={"activity_id": "/items/0/id"},
              summary="The caller's activities in any status (admins: everyone's)")
    async def get(self) -> None:
        self.ok(await organising.list_activities(self.r, _actor(self), self.query))

    @endpoint(roles=ORGANISERS, body=forms.ActivityBody, tags=TAGS, status=201,
              errors=(ActivityInvalid, SensitiveContent), refuses=forms.TERMS_RULES,
              links={"activity_id": "/id"},
              summary="Create an activity, as a draft (a merchant's is theirs, an admin's the "
                      "platform's)")
    async def post(self) -> None:
        self.ok(await organising.create_activity(self.r, _actor(self), self.body), status=201)


class OrganiserActivityHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, tags=TAGS, errors=(ActivityNotFound,),
              summary="One of the caller's activities with its registration counts and "
                      "timeline")
    async def get(self, activity_id: int) -> None:
        self.ok(await organising.get_activity(self.r, _actor(self), activity_id))

    @endpoint(roles=ORGANISERS, body=forms.ActivityPatch, tags=TAGS,
              errors=(ActivityNotFound, ActivityInvalid, ActivityStateConflict,
                      ActivityTermsLocked, SensitiveContent),
              refuses=forms.TERMS_RULES,
              summary="Change a draft or published activity (price, form and capacity below "
                      "the seats taken are fixed once people registered); a published one's "
                      "live registrants are told of a new time, place or cancel deadline")
    async def patch(self, activity_id: int) -> None:
        self.ok(await organising.update_activity(self.r, _actor(self), activity_id, self.body))


class OrganiserPublishHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, tags=TAGS,
              errors=(ActivityNotFound, ActivityInvalid, ActivityStateConflict),
              summary="Publish a draft: users see it and register within its window")
    async def post(self, activity_id: int) -> None:
        self.ok(await organising.publish_activity(self.r, _actor(self), activity_id))


class OrganiserCancelHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, body=forms.ReasonBody, tags=TAGS, idempotent=True,
              errors=(ActivityNotFound, ActivityStateConflict, SensitiveContent),
              refuses={"reason": "no sensitive word (registrants are shown it)"},
              summary="Cancel an activity: every registrant is told and paid back (cash "
                      "refunds, points returned); calling it again settles what is left")
    async def post(self, activity_id: int) -> None:
        self.ok(await organising.cancel_activity(self.r, _actor(self), activity_id,
                                                 self.body.reason))


class OrganiserRegistrationsHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, query=organising.RegistrationsQuery, tags=TAGS,
              errors=(ActivityNotFound,),
              summary="An activity's registrations in the order they came, with answers")
    async def get(self, activity_id: int) -> None:
        self.ok(await organising.list_registrations(self.r, _actor(self), activity_id,
                                                    self.query))


class OrganiserCheckInsHandler(ApiHandler):
    @endpoint(roles=ORGANISERS, body=forms.CheckInBody, tags=TAGS,
              errors=(ActivityNotFound, CheckInCodeUnknown, AlreadyCheckedInToActivity,
                      RegistrationStateConflict, ActivityStateConflict),
              summary="Check a confirmed registrant in by the code they show (typed or "
                      "scanned)")
    async def post(self, activity_id: int) -> None:
        self.ok(await organising.check_in(self.r, _actor(self), activity_id, self.body))
