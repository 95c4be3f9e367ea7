"""The free-slot computation (pawhome/booking/slots.py), pure: hours, overrides and breaks
make a day's windows; a start is offered where the service fits a window and, with its
buffers, touches no other booking; notice and horizon cut what may be booked now. Times are
Asia/Shanghai (UTC+8 all year: no daylight-saving gap or repeat)."""
from __future__ import annotations

import datetime as dt

from pawhome.booking import slots

DAY = dt.date(2027, 3, 14)  # a Sunday; China has no DST, so every day is 24 h


def local(clock: str, day: dt.date = DAY) -> dt.datetime:
    """A naive-UTC instant for `clock` on `day` in Asia/Shanghai."""
    hours, minutes = map(int, clock.split(":"))
    aware = dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=slots.TZ)
    return aware.astimezone(dt.UTC).replace(tzinfo=None)


def clocks(starts: list[dt.datetime]) -> list[str]:
    return [s.replace(tzinfo=dt.UTC).astimezone(slots.TZ).strftime("%H:%M") for s in starts]


def test_a_local_day_starts_at_16_utc_the_day_before_every_day_of_the_year():
    for day in (dt.date(2027, 1, 1), dt.date(2027, 3, 28), dt.date(2027, 11, 7)):
        assert slots.local_midnight_utc(day) == dt.datetime.combine(
            day - dt.timedelta(days=1), dt.time(16, 0))
    assert slots.local_day(dt.datetime(2027, 3, 13, 16, 0)) == dt.date(2027, 3, 14)
    assert slots.local_day(dt.datetime(2027, 3, 13, 15, 59)) == dt.date(2027, 3, 13)


def test_windows_join_weekly_and_extra_hours_and_lose_the_breaks():
    windows = slots.open_windows([(540, 720), (780, 1080)], [(1080, 1200)], [(600, 630)],
                                 closed=False)
    assert windows == [(540, 600), (630, 720), (780, 1200)]


def test_a_day_off_or_holiday_has_no_windows_even_with_extra_hours():
    assert slots.open_windows([(540, 1080)], [(1080, 1200)], [], closed=True) == []


def test_starts_step_15_minutes_and_the_service_must_end_inside_the_window():
    starts = slots.free_starts(DAY, [(540, 660)], [], duration=60)
    assert clocks(starts) == ["09:00", "09:15", "09:30", "09:45", "10:00"]


def test_a_break_splits_the_day_and_nothing_straddles_it():
    windows = slots.open_windows([(540, 720)], [], [(600, 630)], closed=False)
    starts = slots.free_starts(DAY, windows, [], duration=30)
    assert clocks(starts) == ["09:00", "09:15", "09:30", "10:30", "10:45", "11:00", "11:15",
                              "11:30"]


def test_a_booking_blocks_overlapping_starts_and_buffers_keep_their_distance():
    busy = [(local("10:00"), local("11:00"))]
    plain = clocks(slots.free_starts(DAY, [(540, 780)], busy, duration=60))
    assert plain == ["09:00", "11:00", "11:15", "11:30", "11:45", "12:00"]
    buffered = clocks(slots.free_starts(DAY, [(540, 780)], busy, duration=60,
                                        buffer_before=15, buffer_after=15))
    # 09:00 would end 10:00 + 15 min clean-up inside the booking; 11:00 needs 15 min before.
    assert buffered == ["11:15", "11:30", "11:45", "12:00"]


def test_buffers_may_reach_outside_the_hours_but_the_service_may_not():
    starts = slots.free_starts(DAY, [(540, 600)], [], duration=60, buffer_before=30,
                               buffer_after=30)
    assert clocks(starts) == ["09:00"]


def test_busy_time_from_the_day_before_reaches_into_the_morning():
    busy = [(local("23:30", DAY - dt.timedelta(days=1)), local("00:30"))]
    starts = slots.free_starts(DAY, [(0, 120)], busy, duration=30)
    assert clocks(starts) == ["00:30", "00:45", "01:00", "01:15", "01:30"]


def test_notice_and_horizon_cut_what_may_be_booked_now():
    starts = slots.free_starts(DAY, [(540, 720)], [], duration=60)
    now = local("08:50")
    assert clocks(slots.bookable(starts, now=now, min_notice_minutes=120, horizon_days=30)) \
        == ["11:00"]
    assert slots.bookable(starts, now=local("08:00", DAY - dt.timedelta(days=3)),
                          min_notice_minutes=0, horizon_days=2) == []
    assert len(slots.bookable(starts, now=local("08:00", DAY - dt.timedelta(days=3)),
                              min_notice_minutes=0, horizon_days=3)) == len(starts)


def test_a_booking_occupies_its_units_buffers_included():
    units = slots.unit_starts(local("10:00"), 30, 10, 5)
    assert units[0] == local("09:50") and units[-1] == local("10:30")
    assert len(units) == (10 + 30 + 5) // slots.UNIT_MINUTES


def test_a_stay_has_one_night_per_day_before_check_out():
    assert slots.nights(dt.date(2027, 2, 27), dt.date(2027, 3, 2)) == [
        dt.date(2027, 2, 27), dt.date(2027, 2, 28), dt.date(2027, 3, 1)]


def test_times_show_in_shanghai_and_a_time_without_zone_is_refused():
    assert slots.iso_local(local("10:00")) == "2027-03-14T10:00:00+08:00"
    try:
        slots.to_utc(dt.datetime(2027, 3, 14, 10, 0))
    except ValueError:
        pass
    else:
        raise AssertionError("a naive time was taken")
    aware = dt.datetime(2027, 3, 14, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert slots.to_utc(aware) == dt.datetime(2027, 3, 14, 1, 0)
