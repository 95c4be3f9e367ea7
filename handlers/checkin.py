"""Daily check-in endpoints (virtual pet, seed 001): the month's calendar and offer, checking
in today, making up a missed day, the daily reminder. Thin: each calls one function of
pawhome/virtualpet/checkin.py; docs/virtual-pet.md ("Daily check-in").
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.platform.errors import AlreadyCheckedIn, InsufficientPoints, MakeupNotAllowed
from pawhome.virtualpet import checkin

TAGS = ("virtual-pet",)


class CheckinStatusHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="This month's check-ins (Asia/Shanghai), today's state, the "
                                 "current streak, the next days' rewards and the make-up offer")
    async def get(self) -> None:
        self.ok(await checkin.status(self.r, self.user_id))


class CheckinHandler(ApiHandler):
    @endpoint(tags=TAGS, idempotent=True, errors=(AlreadyCheckedIn,),
              summary="Check in today: the day's points and any streak bonus (once a day, "
                      "409 after that)")
    async def post(self) -> None:
        self.ok(await checkin.check_in(self.r, self.user_id))


class CheckinMakeupHandler(ApiHandler):
    @endpoint(body=checkin.MakeupBody, tags=TAGS, idempotent=True,
              errors=(AlreadyCheckedIn, MakeupNotAllowed, InsufficientPoints),
              refuses=checkin.MAKEUP_REFUSALS,
              summary="Make up a missed day of the last week for points; the streak is "
                      "repaired")
    async def post(self) -> None:
        self.ok(await checkin.make_up(self.r, self.user_id, self.body))


class CheckinReminderHandler(ApiHandler):
    @endpoint(body=checkin.ReminderBody, tags=TAGS,
              summary="Switch the daily check-in reminder on or off, at an hour (Asia/Shanghai)")
    async def put(self) -> None:
        self.ok(await checkin.set_reminder(self.r, self.user_id, self.body))
