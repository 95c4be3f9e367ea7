"""The free-slot computation, pure: no database, no clock, no cache — every input is an
argument, so the rules are tested directly (tests/test_booking_slots.py) and
pawhome/booking/availability.py only gathers the inputs. docs/booking.md ("Slots").

A day's schedule is in minutes of the Asia/Shanghai day (no daylight saving there, so a
day is always 1440 minutes, UTC+8). Occupied time is a list of UTC intervals: the slot
units of other holds and appointments, buffers included.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
UNIT_MINUTES = 5  # the granularity of slot units (and of hours, buffers, durations)
STEP_MINUTES = 15  # offered start times step this far from each window's start

Window = tuple[int, int]  # [start, end) minutes of the local day


def local_midnight_utc(day: dt.date) -> dt.datetime:
    """The naive-UTC instant the Asia/Shanghai `day` starts."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=TZ)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def local_day(instant: dt.datetime) -> dt.date:
    """The Asia/Shanghai date of a naive-UTC instant."""
    return instant.replace(tzinfo=dt.UTC).astimezone(TZ).date()


def merge(windows: Iterable[Window]) -> list[Window]:
    """Sorted, overlapping or touching windows joined."""
    out: list[Window] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(windows: Sequence[Window], holes: Iterable[Window]) -> list[Window]:
    """`windows` minus every hole."""
    result = merge(windows)
    for h_start, h_end in merge(holes):
        cut: list[Window] = []
        for start, end in result:
            if h_end <= start or h_start >= end:
                cut.append((start, end))
                continue
            if start < h_start:
                cut.append((start, h_start))
            if h_end < end:
                cut.append((h_end, end))
        result = cut
    return result


def open_windows(weekly: Iterable[Window], extra: Iterable[Window], breaks: Iterable[Window],
                 closed: bool) -> list[Window]:
    """A date's bookable windows: the weekly hours plus extra hours, minus breaks; nothing
    on a day off or holiday (`closed`)."""
    if closed:
        return []
    return subtract(merge([*weekly, *extra]), breaks)


def free_starts(day: dt.date, windows: Sequence[Window], busy: Iterable[tuple[dt.datetime,
                dt.datetime]], *, duration: int, buffer_before: int = 0,
                buffer_after: int = 0, step: int = STEP_MINUTES) -> list[dt.datetime]:
    """The naive-UTC start times on `day` where the service itself fits inside one open
    window and the service with its buffers overlaps no busy interval. Buffers may reach
    outside the hours (a clean-up after closing is fine) but never into another booking."""
    midnight = local_midnight_utc(day)
    busy_minutes = merge((int((s - midnight).total_seconds() // 60),
                          int(-(-(e - midnight).total_seconds() // 60))) for s, e in busy)
    starts: list[dt.datetime] = []
    for w_start, w_end in windows:
        minute = w_start
        while minute + duration <= w_end:
            lo, hi = minute - buffer_before, minute + duration + buffer_after
            if not any(b_start < hi and lo < b_end for b_start, b_end in busy_minutes):
                starts.append(midnight + dt.timedelta(minutes=minute))
            minute += step
    return starts


def bookable(starts: Iterable[dt.datetime], *, now: dt.datetime, min_notice_minutes: int,
             horizon_days: int) -> list[dt.datetime]:
    """The starts a user may book now: at least the notice ahead, and on a local date no
    later than `horizon_days` after today's."""
    earliest = now + dt.timedelta(minutes=min_notice_minutes)
    last_day = local_day(now) + dt.timedelta(days=horizon_days)
    return [s for s in starts if s >= earliest and local_day(s) <= last_day]


def unit_starts(start: dt.datetime, duration: int, buffer_before: int,
                buffer_after: int) -> list[dt.datetime]:
    """The slot units a booking at `start` occupies, buffers included."""
    first = start - dt.timedelta(minutes=buffer_before)
    count = (buffer_before + duration + buffer_after) // UNIT_MINUTES
    return [first + dt.timedelta(minutes=UNIT_MINUTES * i) for i in range(count)]


def busy_from_units(units: Iterable[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    step = dt.timedelta(minutes=UNIT_MINUTES)
    return [(u, u + step) for u in units]


def nights(first: dt.date, last_exclusive: dt.date) -> list[dt.date]:
    """The nights of a boarding stay from check-in `first` to check-out `last_exclusive`."""
    return [first + dt.timedelta(days=i) for i in range((last_exclusive - first).days)]


def iso_local(instant: dt.datetime) -> str:
    """A naive-UTC instant as users see it: ISO 8601 in Asia/Shanghai with its offset."""
    return instant.replace(tzinfo=dt.UTC).astimezone(TZ).isoformat()


def to_utc(aware: dt.datetime) -> dt.datetime:
    """An offset-carrying instant from the API as naive UTC."""
    if aware.tzinfo is None:
        raise ValueError("a time needs its offset")
    return aware.astimezone(dt.UTC).replace(tzinfo=None)
