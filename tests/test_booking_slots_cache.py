"""The slots cache under concurrent bookings (issue 15 §2): readers of a second process (its
own pool and Redis connection) never see a held slot as free once the hold has answered,
and see it again once its cancellation has answered; concurrent misses of one resource-day
read the tables once; a schedule change drops the cached open windows at once, while a hold
leaves them cached and has its day computed again for the next readers. docs/booking.md
("Slots", cache)."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import event

from pawhome.booking import availability, booking_cache
from tests.booking_support import at, hold, make_provider, pet_owner, tomorrow


def _all_statements(engine) -> tuple[list[str], object]:
    """Every statement on `engine` (any task: single-flight computes in a task of its own)."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
def other_process(settings, io_loop):
    """Resources of a second gateway process: its own pool and Redis connection."""
    from pawhome.platform.resources import Resources

    res = Resources(settings)
    yield res
    io_loop.run_sync(res.close)


@pytest.mark.gen_test(timeout=180)
async def test_readers_never_see_a_held_slot_free_and_see_it_again_after_the_cancel(
        api, resources, other_process):
    setup = await make_provider(api, resources, staff=2)
    sid, staff = setup["service"]["id"], setup["staff"][0]
    day = tomorrow()
    query = availability.SlotsQuery(date=day)
    contested = [at(day, clock) for clock in ("10:00", "11:00", "14:00", "16:00")]
    reads: list[tuple[float, float, set[str]]] = []  # (asked, answered, staff's free starts)
    done = asyncio.Event()

    async def reader(res) -> None:
        while not done.is_set():
            asked = time.monotonic()
            view = await availability.service_slots(res, sid, query)
            free = next(s for s in view["days"][0]["staff"] if s["staff_id"] == staff)
            reads.append((asked, time.monotonic(), set(free["starts"])))
            await asyncio.sleep(0)

    readers = [asyncio.ensure_future(reader(other_process if n % 2 else resources))
               for n in range(8)]
    taken: list[tuple[str, float, float]] = []  # (start, hold answered, cancel asked)
    freed: list[tuple[str, float]] = []  # (start, cancel answered)
    try:
        await asyncio.sleep(0.2)  # the cache filled and being read
        for start in contested:
            user, pet = await pet_owner(resources)
            held = (await hold(api, user, pet, sid, start, staff)).ok(201)
            held_at = time.monotonic()
            booked = (await api.post("/v1/appointments", json={"hold_id": held["id"]},
                                     token=user.token,
                                     headers={"Idempotency-Key": uuid.uuid4().hex})).ok(201)
            await asyncio.sleep(0.1)
            cancel_asked = time.monotonic()
            (await api.post(f"/v1/appointments/{booked['id']}/cancel", json={"reason": "x"},
                            token=user.token)).ok()
            taken.append((start, held_at, cancel_asked))
            freed.append((start, time.monotonic()))
        await asyncio.sleep(0.1)
    finally:
        done.set()
        await asyncio.gather(*readers)
    assert len(reads) > 50
    for start, held_at, cancel_asked in taken:
        during = [free for asked, answered, free in reads
                  if asked > held_at and answered < cancel_asked]
        assert during, "no read fell between the hold and its cancellation"
        assert all(start not in free for free in during), start
    for start, cancelled_at in freed:
        after = [free for asked, _, free in reads if asked > cancelled_at]
        assert after and all(start in free for free in after), start
    # the held slot was offered before it was held (the reads did see it)
    assert all(start in reads[0][2] for start in contested)


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_misses_of_a_resource_day_read_the_tables_once(
        api, resources, monkeypatch):
    setup = await make_provider(api, resources, staff=1)
    sid = setup["service"]["id"]
    query = availability.SlotsQuery(date=tomorrow())
    await availability.slot_rules(resources, sid)  # the rules cached: only the day misses
    # The first computation is held at its taken-units query until all 30 readers have
    # missed: without single flight each of them would run that query itself.
    readers, missed, everyone_missed = 30, [0], asyncio.Event()
    real_read_many, real_busy_units = booking_cache.read_many, availability.busy_units
    computations = [0]

    async def counting_read_many(cache, pairs):
        out = await real_read_many(cache, pairs)
        missed[0] += sum(payload is None for _, payload in out)
        if missed[0] >= readers:
            everyone_missed.set()
        return out

    async def gated_busy_units(*args):
        computations[0] += 1
        await asyncio.wait_for(everyone_missed.wait(), 10)
        return await real_busy_units(*args)

    monkeypatch.setattr(booking_cache, "read_many", counting_read_many)
    monkeypatch.setattr(availability, "busy_units", gated_busy_units)
    statements, stop = _all_statements(resources.db.engine)
    try:
        views = await asyncio.gather(*(availability.service_slots(resources, sid, query)
                                       for _ in range(readers)))
    finally:
        stop()
    assert all(v == views[0] for v in views)
    assert views[0]["days"][0]["any"]
    # the one under way, and one more for the readers that came while it ran
    assert computations[0] <= 2, computations[0]
    assert 1 <= len([s for s in statements if "booking_slot_units" in s]) <= 2
    assert 1 <= len([s for s in statements if "booking_hours" in s]) <= 2


@pytest.mark.gen_test(timeout=120)
async def test_a_hold_keeps_the_cached_windows_and_a_break_drops_them_at_once(api, resources):
    setup = await make_provider(api, resources, staff=1)
    sid, staff, pid = setup["service"]["id"], setup["staff"][0], setup["provider"]["id"]
    day = tomorrow()
    query = availability.SlotsQuery(date=day)
    first = await availability.service_slots(resources, sid, query)
    assert at(day, "15:00") in first["days"][0]["any"]
    redis, cache = resources.cache.redis, resources.cache
    windows = booking_cache.windows_key(cache, f"s{staff}", day)
    windows_generation = await redis.get(booking_cache.windows_generation_key(cache,
                                                                              f"s{staff}"))
    slots_generation = await redis.get(booking_cache.slots_generation_key(cache, f"s{staff}"))
    user, pet = await pet_owner(resources)
    (await hold(api, user, pet, sid, at(day, "10:00"), staff)).ok(201)
    # the hold dropped the day's free starts, not its windows, and computed the day again
    assert await redis.get(booking_cache.slots_generation_key(cache, f"s{staff}")) \
        != slots_generation
    assert await redis.get(booking_cache.windows_generation_key(cache, f"s{staff}")) \
        == windows_generation
    assert await redis.get(windows) is not None
    statements, stop = _all_statements(resources.db.engine)
    try:
        held = await availability.service_slots(resources, sid, query)
    finally:
        stop()
    assert at(day, "10:00") not in held["days"][0]["any"]
    assert not [s for s in statements if "booking" in s]  # refilled by the hold: a hit
    (await api.post(f"/v1/merchant/providers/{pid}/breaks", json={
        "staff_id": None, "day": day.isoformat(), "start": "15:00", "end": "16:00"},
        token=setup["merchant"].token)).ok(201)
    after = await availability.service_slots(resources, sid, query)
    assert at(day, "15:00") not in after["days"][0]["any"]
    assert at(day, "10:00") not in after["days"][0]["any"]
    assert at(day, "16:00") in after["days"][0]["any"]
