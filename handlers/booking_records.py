"""Service records: the provider writes an appointment's record (vaccine, grooming, medical,
boarding); the pet's owner reads the pet's history. Thin: each calls one function of
pawhome/booking/records.py; docs/booking.md "Service records".
"""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from pawhome.booking import records
from pawhome.platform.errors import AppointmentStateConflict, RecordExists, ValidationFailed

TAGS = ("booking",)
SELLERS = ("merchant", "admin")


class AppointmentRecordHandler(ApiHandler):
    @endpoint(body=records.RecordBody, roles=SELLERS, tags=TAGS, status=201,
              errors=(AppointmentStateConflict, RecordExists, ValidationFailed),
              summary="Write the service record of one of the provider's appointments, once "
                      "the pet is checked in (details of the appointment's kind, up to 9 "
                      "images)",
              refuses={"details": "of the appointment's kind",
                       "media_ids": "the caller's ready images"})
    async def post(self, appointment_id: int) -> None:
        self.ok(await records.write_record(self.r, self.user_id, self.caller.role,
                                           appointment_id, self.body), status=201)


class PetRecordsHandler(ApiHandler):
    @endpoint(query=records.RecordsQuery, tags=TAGS,
              summary="The service records of one of the caller's pets, newest first")
    async def get(self, pet_id: int) -> None:
        self.ok(await records.pet_records(self.r, self.user_id, pet_id, self.query))
