"""Pet-services booking endpoints: the public catalogue and slots, the user's holds and
appointments, and the providers' set-up (providers, staff, services, schedules) and their
appointments (merchants their own, admins any).

Thin: each calls one function of pawhome/booking/; docs/booking.md.
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.booking import (
    appointments,
    availability,
    catalogue,
    catalogue_views,
    deposit_payments,
    holds,
    schedules,
)
from pawhome.platform.errors import (
    AppointmentStateConflict,
    BoardingFull,
    BookingInvalid,
    CancellationClosed,
    Conflict,
    DepositInvalid,
    DepositNotDue,
    DepositPaid,
    DepositRequired,
    HoldExpired,
    NotFound,
    SlotTaken,
    SlotUnavailable,
    ValidationFailed,
)

TAGS = ("booking",)
SELLER_TAGS = ("merchant", "booking")
SELLERS = ("merchant", "admin")


# -- public ----------------------------------------------------------------------------------


class ServicesHandler(ApiHandler):
    @endpoint(auth=False, query=catalogue_views.ServicesQuery, tags=TAGS,
              refuses=catalogue_views.SERVICES_REFUSALS,
              summary="Bookable services: by kind and pet type, near a point (by distance) "
                      "or by rating or price")
    async def get(self) -> None:
        self.ok(await catalogue_views.list_services(self.r, self.query))


class ServiceSlotsHandler(ApiHandler):
    @endpoint(auth=False, query=availability.SlotsQuery, tags=TAGS, errors=(BookingInvalid,),
              refuses=availability.SLOTS_REFUSALS,
              summary="A service's free start times per staff member and for any staff "
                      "(Asia/Shanghai days); boarding: rooms left per night")
    async def get(self, service_id: int) -> None:
        self.ok(await availability.service_slots(self.r, service_id, self.query))


class ProviderHandler(ApiHandler):
    @endpoint(auth=False, tags=TAGS,
              summary="A provider with its services, staff and next available day")
    async def get(self, provider_id: int) -> None:
        self.ok(await catalogue_views.provider_page(self.r, provider_id))


class ProviderStaffHandler(ApiHandler):
    @endpoint(auth=False, tags=TAGS, summary="A provider's staff (doctors, groomers)")
    async def get(self, provider_id: int) -> None:
        self.ok(await catalogue_views.provider_staff(self.r, provider_id))


# -- the user's holds and appointments -------------------------------------------------------


class HoldsHandler(ApiHandler):
    @endpoint(body=holds.HoldBody, tags=TAGS, status=201,
              errors=(SlotTaken, BoardingFull, SlotUnavailable, BookingInvalid, NotFound),
              refuses=holds.HOLD_REFUSALS,
              summary="Hold a slot (or boarding nights) for one of your pets for a few "
                      "minutes; confirm it with POST /v1/appointments")
    async def post(self) -> None:
        self.ok(await holds.place_hold(self.r, self.user_id, self.body), status=201)


class HoldPayHandler(ApiHandler):
    @endpoint(body=deposit_payments.PayDepositBody, tags=TAGS,
              errors=(DepositPaid, DepositNotDue, HoldExpired, Conflict, ValidationFailed,
                      NotFound),
              refuses=deposit_payments.PAY_REFUSALS,
              summary="Pay your hold's deposit with WeChat Pay: wx.requestPayment parameters "
                      "(the payment books the hold; payable until the hold expires)")
    async def post(self, hold_id: int) -> None:
        self.ok(await deposit_payments.pay_deposit(self.r, self.user_id, hold_id, self.body))


class AppointmentsHandler(ApiHandler):
    @endpoint(query=appointments.MyAppointmentsQuery, tags=TAGS,
              summary="Your appointments: upcoming (soonest first) or past, per pet")
    async def get(self) -> None:
        self.ok(await appointments.my_appointments(self.r, self.user_id, self.query))

    @endpoint(body=appointments.ConfirmBody, tags=TAGS, status=201, idempotent=True,
              errors=(HoldExpired, DepositRequired, NotFound), links={"appointment_id": "/id"},
              summary="Confirm your hold into an appointment (watch `appointment:<id>` for "
                      "appointment.status)")
    async def post(self) -> None:
        self.ok(await appointments.confirm(self.r, self.user_id, self.body), status=201)


class AppointmentHandler(ApiHandler):
    @endpoint(tags=TAGS, summary="An appointment with its timeline (its user and provider)")
    async def get(self, appointment_id: int) -> None:
        self.ok(await appointments.get_appointment(self.r, self.user_id, self.caller.role,
                                                   appointment_id))


class AppointmentCancelHandler(ApiHandler):
    @endpoint(body=appointments.CancelBody, tags=TAGS,
              errors=(AppointmentStateConflict, CancellationClosed),
              summary="Cancel your appointment before its cancellation deadline")
    async def post(self, appointment_id: int) -> None:
        self.ok(await appointments.cancel_by_user(self.r, self.user_id, appointment_id,
                                                  self.body))


class AppointmentRescheduleHandler(ApiHandler):
    @endpoint(body=appointments.RescheduleBody, tags=TAGS, idempotent=True,
              errors=(AppointmentStateConflict, CancellationClosed, SlotTaken, SlotUnavailable,
                      BookingInvalid),
              refuses=appointments.RESCHEDULE_REFUSALS,
              summary="Move your appointment to another free slot (atomic: the old slot is "
                      "kept if the new one cannot be had)")
    async def post(self, appointment_id: int) -> None:
        self.ok(await appointments.reschedule(self.r, self.user_id, appointment_id, self.body))


# -- providers -------------------------------------------------------------------------------


class MerchantProvidersHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS,
              summary="Your providers (admins: every one)")
    async def get(self) -> None:
        self.ok(await catalogue.list_own_providers(self.r, self.user_id, self.caller.role))

    @endpoint(roles=SELLERS, body=catalogue.ProviderBody, tags=SELLER_TAGS, status=201,
              links={"provider_id": "/id"},
              summary="Open a provider (clinic, grooming shop, boarding house)")
    async def post(self) -> None:
        self.ok(await catalogue.create_provider(self.r, self.user_id, self.body), status=201)


class MerchantProviderHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=catalogue.ProviderPatch, tags=SELLER_TAGS,
              summary="Change your provider (or close it)")
    async def patch(self, provider_id: int) -> None:
        self.ok(await catalogue.update_provider(self.r, self.user_id, self.caller.role,
                                                provider_id, self.body))


class MerchantStaffHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=catalogue.StaffBody, tags=SELLER_TAGS, status=201,
              errors=(BookingInvalid,), refuses=catalogue.STAFF_REFUSALS,
              links={"staff_id": "/id"}, summary="Add a staff member to your provider")
    async def post(self, provider_id: int) -> None:
        self.ok(await catalogue.create_staff(self.r, self.user_id, self.caller.role,
                                             provider_id, self.body), status=201)


class MerchantStaffMemberHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=catalogue.StaffPatch, tags=SELLER_TAGS,
              errors=(BookingInvalid,), refuses=catalogue.STAFF_REFUSALS,
              summary="Change a staff member (services they perform, active)")
    async def patch(self, staff_id: int) -> None:
        self.ok(await catalogue.update_staff(self.r, self.user_id, self.caller.role, staff_id,
                                             self.body))


class MerchantServicesHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=catalogue.ServiceBody, tags=SELLER_TAGS, status=201,
              errors=(DepositInvalid,), refuses=catalogue.SERVICE_REFUSALS,
              links={"service_id": "/id"}, summary="Add a service to your provider")
    async def post(self, provider_id: int) -> None:
        self.ok(await catalogue.create_service(self.r, self.user_id, self.caller.role,
                                               provider_id, self.body), status=201)


class MerchantServiceHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=catalogue.ServicePatch, tags=SELLER_TAGS,
              errors=(DepositInvalid,), refuses=catalogue.SERVICE_REFUSALS,
              summary="Change a service (price, deposit, rules) or stop it")
    async def patch(self, service_id: int) -> None:
        self.ok(await catalogue.update_service(self.r, self.user_id, self.caller.role,
                                               service_id, self.body))


class MerchantScheduleHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS,
              summary="Your provider's hours, overrides and breaks, and the booked "
                      "appointments they no longer cover")
    async def get(self, provider_id: int) -> None:
        self.ok(await schedules.get_schedule(self.r, self.user_id, self.caller.role,
                                             provider_id))


class MerchantHoursHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=schedules.HoursBody, tags=SELLER_TAGS,
              errors=(BookingInvalid,), refuses=schedules.HOURS_REFUSALS,
              summary="Replace a staff member's (or the provider's) weekly hours; answers "
                      "with the appointments now outside them (never dropped)")
    async def put(self, provider_id: int) -> None:
        self.ok(await schedules.set_weekly_hours(self.r, self.user_id, self.caller.role,
                                                 provider_id, self.body))


class MerchantOverridesHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=schedules.OverrideBody, tags=SELLER_TAGS, status=201,
              errors=(BookingInvalid,), refuses=schedules.OVERRIDE_REFUSALS,
              summary="Add extra hours, a day off or a holiday; answers with the conflicts")
    async def post(self, provider_id: int) -> None:
        self.ok(await schedules.add_override(self.r, self.user_id, self.caller.role,
                                             provider_id, self.body), status=201)


class MerchantOverrideHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS, summary="Remove an override")
    async def delete(self, provider_id: int, entry_id: int) -> None:
        self.ok(await schedules.remove_entry(self.r, self.user_id, self.caller.role,
                                             provider_id, "overrides", entry_id))


class MerchantBreaksHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=schedules.BreakBody, tags=SELLER_TAGS, status=201,
              errors=(BookingInvalid,), refuses=schedules.BREAK_REFUSALS,
              summary="Add a weekly or one-day break; answers with the conflicts")
    async def post(self, provider_id: int) -> None:
        self.ok(await schedules.add_break(self.r, self.user_id, self.caller.role,
                                          provider_id, self.body), status=201)


class MerchantBreakHandler(ApiHandler):
    @endpoint(roles=SELLERS, tags=SELLER_TAGS, summary="Remove a break")
    async def delete(self, provider_id: int, entry_id: int) -> None:
        self.ok(await schedules.remove_entry(self.r, self.user_id, self.caller.role,
                                             provider_id, "breaks", entry_id))


class MerchantAppointmentsHandler(ApiHandler):
    @endpoint(roles=SELLERS, query=appointments.ProviderAppointmentsQuery, tags=SELLER_TAGS,
              summary="Your provider's appointments, by start (a day, a status)")
    async def get(self, provider_id: int) -> None:
        self.ok(await appointments.provider_appointments(
            self.r, self.user_id, self.caller.role, provider_id, self.query))


class MerchantAppointmentActionHandler(ApiHandler):
    @endpoint(roles=SELLERS, body=appointments.ProviderActionBody, tags=SELLER_TAGS,
              errors=(AppointmentStateConflict, BookingInvalid),
              refuses={"reason": "required to cancel"},
              summary="Confirm, check in, complete, cancel (with a reason) or mark a no-show")
    async def post(self, appointment_id: int) -> None:
        self.ok(await appointments.provider_action(self.r, self.user_id, self.caller.role,
                                                   appointment_id, self.body))
