"""The baselines for bench_booking.py: bare Tornado handlers doing only the booking's storage
work, with nothing of the gateway around them (no envelope code, request ids, rate limits,
idempotency records, metrics, access log, ORM, outbox relay, cache writes).

    GET  /bare/slots/cached   one Redis MGET of every key the gateway reads for the service's
                              day (each performer's slot generation and cached free starts),
                              the generations checked, then what the gateway does after its
                              reads: notice and horizon (pawhome.booking.slots.bookable), the
                              union, ISO times, one JSON body;
    GET  /bare/slots/db       the SQL reads the slot computation needs, the statements the
                              gateway runs on a miss (the service, its provider, its
                              performers; per performer their weekly hours, the day's
                              overrides, the breaks and the occupied units around the day) on
                              a pooled connection (pawhome.platform.db.make_engine,
                              exec_driver_sql), then the pure computation of
                              pawhome.booking.slots (open_windows, free_starts, bookable);
    POST /bare/book           a booking of one slot: the token checked as bare_server.py does,
                              then in ONE transaction INSERT the hold row, the slot-unit rows
                              under UNIQUE (resource, unit_start) and the appointment row; a
                              duplicate key rolls it back and answers 409, a deadlock reruns
                              it (as the gateway's run_transaction does); no pooled
                              connection within DB_POOL_TIMEOUT answers 503 as the gateway.

The service, its performers, the day and the cache keys come from bench_booking.py
(BENCH_BARE_SPEC: a pickle of {"service": {...}, "staff": [(id, name)], "day", "keys":
[(generation key, value key)] in the order of "staff"}).
"""
from __future__ import annotations

import datetime as dt
import os
import pickle
import sys
from pathlib import Path

import tornado.web
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bare_server import Healthz, authenticated_user_id, listen_forever, run  # noqa: E402

from pawhome.booking import slots  # noqa: E402
from pawhome.platform import codec  # noqa: E402
from pawhome.platform.cache import make_redis  # noqa: E402
from pawhome.platform.db import make_engine  # noqa: E402
from settings import get_settings  # noqa: E402

SERVICE = "SELECT * FROM booking_services WHERE booking_services.id = %s"
PROVIDER = "SELECT * FROM booking_providers WHERE booking_providers.id = %s"
PERFORMERS = ("SELECT booking_staff.* FROM booking_staff JOIN booking_staff_services ON "
              "booking_staff_services.staff_id = booking_staff.id WHERE "
              "booking_staff_services.service_id = %s AND booking_staff.active IS true "
              "ORDER BY booking_staff.id")
HOURS = ("SELECT * FROM booking_hours WHERE booking_hours.provider_id = %s AND "
         "booking_hours.staff_id = %s")
OVERRIDES = ("SELECT * FROM booking_overrides WHERE booking_overrides.provider_id = %s AND "
             "(booking_overrides.staff_id IS NULL OR booking_overrides.staff_id = %s) AND "
             "booking_overrides.day IN (%s)")
BREAKS = ("SELECT * FROM booking_breaks WHERE booking_breaks.provider_id = %s AND "
          "(booking_breaks.staff_id IS NULL OR booking_breaks.staff_id = %s) AND "
          "(booking_breaks.day IN (%s) OR booking_breaks.day IS NULL)")
RERUNS = 3  # a deadlock (or lock wait timeout) is rerun, as pawhome.platform.db.run_transaction does
UNITS = ("SELECT booking_slot_units.unit_start, booking_slot_units.expires_at FROM "
         "booking_slot_units WHERE booking_slot_units.resource = %s AND "
         "booking_slot_units.unit_start >= %s AND booking_slot_units.unit_start < %s AND "
         "(booking_slot_units.expires_at IS NULL OR booking_slot_units.expires_at > %s)")
INSERT_HOLD = (
    "INSERT INTO appointment_holds (user_id, provider_id, service_id, staff_id, pet_id, "
    "start_at, end_at, status, expires_at, appointment_id, created_at) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
INSERT_UNITS = ("INSERT INTO booking_slot_units (resource, unit_start, hold_id, expires_at) "
                "VALUES (%s, %s, %s, %s)")
INSERT_APPOINTMENT = (
    "INSERT INTO appointments (user_id, provider_id, owner_id, service_id, staff_id, pet_id, "
    "hold_id, kind, start_at, end_at, price, remark, status, cancel_deadline_at, created_at, "
    "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def answer(handler: tornado.web.RequestHandler, data: object, status: int = 200) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.finish(codec.dumps({"code": 0, "message": "ok", "data": data}))


def day_of(service: dict, day: dt.date, now: dt.datetime,
           per_staff: list[tuple[int, str, list[dt.datetime]]]) -> dict:
    """The gateway's answer for one day from each performer's free starts."""
    staff, union = [], set()
    for staff_id, name, starts in per_staff:
        ok = slots.bookable(starts, now=now, min_notice_minutes=service["min_notice_minutes"],
                            horizon_days=service["horizon_days"])
        union.update(ok)
        staff.append({"staff_id": staff_id, "name": name,
                      "starts": [slots.iso_local(s) for s in ok]})
    return {"service_id": service["id"], "kind": service["kind"],
            "duration_minutes": service["duration_minutes"],
            "days": [{"date": day.isoformat(), "staff": staff,
                      "any": [slots.iso_local(s) for s in sorted(union)]}]}


def cached_starts(generation: bytes | None, raw: bytes | None) -> list[dt.datetime]:
    """A performer's cached free starts if filled under the current generation."""
    head = (generation or b"0") + b"|"
    if raw is None or not raw.startswith(head):
        raise tornado.web.HTTPError(500, "the day is not cached")
    return [dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)
            for t in codec.loads(raw[len(head):])]


class SlotsCached(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        spec = s["spec"]
        values = await s["redis"].mget([k for pair in spec["keys"] for k in pair])
        per_staff = [(staff_id, name, cached_starts(values[2 * n], values[2 * n + 1]))
                     for n, (staff_id, name) in enumerate(spec["staff"])]
        answer(self, day_of(spec["service"], spec["day"], utcnow(), per_staff))


class SlotsCachedReads(tornado.web.RequestHandler):
    """The gateway's cached path with its storage work: the service, provider and performers
    read, then one MGET per performer."""

    async def get(self) -> None:
        s = self.application.settings
        spec = s["spec"]
        async with s["engine"].connect() as conn:
            service = (await conn.exec_driver_sql(SERVICE, (spec["service"]["id"],))
                       ).mappings().one()
            await conn.exec_driver_sql(PROVIDER, (service["provider_id"],))
            staff = (await conn.exec_driver_sql(PERFORMERS, (service["id"],))).mappings().all()
        keys = dict(zip([i for i, _ in spec["staff"]], spec["keys"], strict=True))
        per_staff = [(p["id"], p["name"], cached_starts(*await s["redis"].mget(keys[p["id"]])))
                     for p in staff]
        answer(self, day_of(dict(service), spec["day"], utcnow(), per_staff))


class SlotsDb(tornado.web.RequestHandler):
    async def get(self) -> None:
        s = self.application.settings
        spec = s["spec"]
        day, now = spec["day"], utcnow()
        midnight = slots.local_midnight_utc(day)
        per_staff = []
        async with s["engine"].connect() as conn:
            service = (await conn.exec_driver_sql(SERVICE, (spec["service"]["id"],))
                       ).mappings().one()
            await conn.exec_driver_sql(PROVIDER, (service["provider_id"],))
            staff = (await conn.exec_driver_sql(PERFORMERS, (service["id"],))).mappings().all()
            for person in staff:
                provider_id, staff_id = service["provider_id"], person["id"]
                hours = (await conn.exec_driver_sql(HOURS, (provider_id, staff_id))
                         ).mappings().all()
                overrides = (await conn.exec_driver_sql(OVERRIDES, (provider_id, staff_id, day))
                             ).mappings().all()
                breaks = (await conn.exec_driver_sql(BREAKS, (provider_id, staff_id, day))
                          ).mappings().all()
                units = (await conn.exec_driver_sql(UNITS, (
                    f"s{staff_id}", midnight - dt.timedelta(days=1),
                    midnight + dt.timedelta(days=2), now))).all()
                windows = slots.open_windows(
                    [(h["start_minute"], h["end_minute"]) for h in hours
                     if h["weekday"] == day.weekday()],
                    [(o["start_minute"], o["end_minute"]) for o in overrides
                     if o["kind"] == "extra" and o["start_minute"] is not None],
                    [(b["start_minute"], b["end_minute"]) for b in breaks
                     if b["day"] == day or (b["day"] is None and b["weekday"] == day.weekday())],
                    any(o["kind"] in ("day_off", "holiday") for o in overrides))
                per_staff.append((staff_id, person["name"], slots.free_starts(
                    day, windows, slots.busy_from_units(u for u, _ in units),
                    duration=service["duration_minutes"], buffer_before=service["buffer_before"],
                    buffer_after=service["buffer_after"])))
        answer(self, day_of(dict(service), day, now, per_staff))


class Book(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        pass

    async def post(self) -> None:
        s = self.application.settings
        service = s["spec"]["service"]
        user_id = await authenticated_user_id(self)
        body = codec.loads(self.request.body)
        staff_id, pet_id = int(body["staff_id"]), int(body["pet_id"])
        start = slots.to_utc(dt.datetime.fromisoformat(body["start"]))
        end = start + dt.timedelta(minutes=service["duration_minutes"])
        units = slots.unit_starts(start, service["duration_minutes"], service["buffer_before"],
                                  service["buffer_after"])
        for attempt in range(RERUNS):
            try:
                hold_id, booked_id = await self.book(service, user_id, staff_id, pet_id, start,
                                                     end, units)
                break
            except IntegrityError:
                self.set_status(409)
                self.finish(codec.dumps({"code": 40980, "message": "slot taken",
                                         "errors": [{"field": "start", "message": "taken"}]}))
                return
            except PoolTimeout:  # the gateway's DatabaseUnavailable: the same pool settings
                self.set_status(503)
                self.finish(codec.dumps({"code": 50301, "errors": [],
                                         "message": "No database connection free in time"}))
                return
            except OperationalError as error:  # run_transaction's rule: rerun a deadlock
                if error.orig is None or error.orig.args[0] not in (1213, 1205) \
                        or attempt == RERUNS - 1:
                    raise
        answer(self, {"id": booked_id, "hold_id": hold_id, "status": "confirmed",
                      "start": slots.iso_local(start)}, 201)

    async def book(self, service: dict, user_id: int, staff_id: int, pet_id: int,
                   start: dt.datetime, end: dt.datetime,
                   units: list[dt.datetime]) -> tuple[int, int]:
        now = utcnow()
        async with self.application.settings["engine"].begin() as conn:
            hold = await conn.exec_driver_sql(INSERT_HOLD, (
                user_id, service["provider_id"], service["id"], staff_id, pet_id, start, end,
                "confirmed", now + dt.timedelta(seconds=300), None, now))
            await conn.exec_driver_sql(INSERT_UNITS, [
                (f"s{staff_id}", u, hold.lastrowid, None) for u in units])
            booked = await conn.exec_driver_sql(INSERT_APPOINTMENT, (
                user_id, service["provider_id"], service["owner_id"], service["id"],
                staff_id, pet_id, hold.lastrowid, service["kind"], start, end,
                service["price"], "", "confirmed",
                start - dt.timedelta(hours=service["cancel_deadline_hours"]), now, now))
        return hold.lastrowid, booked.lastrowid


async def serve(port: int) -> None:
    settings = get_settings()
    spec = pickle.loads(Path(os.environ["BENCH_BARE_SPEC"]).read_bytes())
    app = tornado.web.Application(
        [(r"/healthz", Healthz), (r"/bare/slots/cached", SlotsCached),
         (r"/bare/slots/cached-reads", SlotsCachedReads),
         (r"/bare/slots/db", SlotsDb), (r"/bare/book", Book)],
        secret=settings.jwt_secret, prefix=settings.redis_prefix, redis=make_redis(settings),
        engine=make_engine(settings), spec=spec, log_function=lambda handler: None)
    await listen_forever(app, port)


if __name__ == "__main__":
    run(serve)
