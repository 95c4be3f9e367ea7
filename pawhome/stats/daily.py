"""Daily figures: computed per Asia/Shanghai day into `daily_stats`, read by day ranges.

`recompute_recent` (beat, every STATS_RECOMPUTE_SECONDS) computes yesterday and today so far;
`backfill` (an admin's request, through a task) any range. Each day is computed in one
transaction — every metric read from the same snapshot — and upserted, so a rerun writes the
same figures for a finished day, whoever runs it and how often. A metric that cannot be known
(the active-user sketch of a day Redis lost) leaves the stored figure as it is.

The day's active-user sketch is kept in `active_user_sketches` each time the day is computed,
and put back into Redis when Redis lost it, so a monthly figure still counts the 30 days
behind it after Redis was emptied.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from models.stats import ActiveUserSketch, DailyStat
from pawhome.platform import activity
from pawhome.platform.cache import Cache
from pawhome.platform.errors import StatsRangeInvalid, ValidationFailed, field_error
from pawhome.platform.outbox import enqueue_task
from pawhome.platform.resources import Resources
from pawhome.stats.metrics import DayContext, month_of, names, registered

ACTIVE_METRICS = ("dau", "mau")  # the ones read from the sketches


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: dt.date = Field(alias="from", description="first Asia/Shanghai day")
    to: dt.date = Field(description="last day, at most 366 days from `from`")
    metrics: str | None = Field(None, max_length=2000,
                                description="comma-separated metric names; all by default")


class BackfillBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: dt.date = Field(alias="from", description="first Asia/Shanghai day")
    to: dt.date = Field(description="last day (not after today), at most 366 days")


def days_between(first: dt.date, last: dt.date, max_days: int) -> list[dt.date]:
    """The days from `first` to `last`, both included (422 StatsRangeInvalid otherwise)."""
    if last < first:
        raise StatsRangeInvalid(errors=[field_error("to", "is before from")])
    count = (last - first).days + 1
    if count > max_days:
        raise StatsRangeInvalid(errors=[field_error("to", f"at most {max_days} days")])
    return [first + dt.timedelta(days=n) for n in range(count)]


def wanted_metrics(text: str | None) -> list[str]:
    """The metrics a `metrics=` parameter names, in registry order (422 naming unknown ones)."""
    known = names()
    if not text:
        return known
    asked = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in asked if m not in known]
    if unknown or not asked:
        raise ValidationFailed(errors=[field_error(
            "metrics", f"unknown: {', '.join(unknown)[:200]}" if unknown else "name one")])
    return [m for m in known if m in asked]


# -- computing ---------------------------------------------------------------------------------


async def _restore_lost_sketches(session: AsyncSession, cache: Cache,
                                 days: list[dt.date]) -> None:
    """Put back the kept sketches of the days Redis no longer has."""
    present = await cache.execute_many(*(("EXISTS", activity.active_key(cache, d))
                                         for d in days))
    missing = [d for d, there in zip(days, present, strict=True) if not int(there)]
    if not missing:
        return
    rows = (await session.execute(select(ActiveUserSketch).where(
        ActiveUserSketch.day.in_(missing)))).scalars()
    for row in rows:
        await activity.restore_sketch(cache, row.day, row.sketch)


def _upsert(session: AsyncSession, model: Any, values: list[dict[str, Any]],
            keys: list[str], update: list[str]) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        lite = sqlite.insert(model).values(values)
        return lite.on_conflict_do_update(
            index_elements=keys, set_={c: lite.excluded[c] for c in update})
    maria = mysql.insert(model).values(values)
    return maria.on_duplicate_key_update(**{c: maria.inserted[c] for c in update})


async def compute_day(resources: Resources, day: dt.date) -> dict[str, int]:
    """Compute every registered metric for `day` from one snapshot and store the figures
    (replacing earlier ones); returns what was stored."""
    cache = resources.cache
    start, end = activity.day_bounds(day)
    now = utcnow()
    async with resources.db.session() as session, session.begin():
        await _restore_lost_sketches(session, cache, month_of(day))
        context = DayContext(day, start, end, session, cache)
        figures: dict[str, int] = {}
        for metric in registered():
            value = await metric.compute(context)
            if value is not None:
                figures[metric.name] = int(value)
        if figures:
            await session.execute(_upsert(
                session, DailyStat,
                [{"day": day, "metric": name, "value": value, "computed_at": now}
                 for name, value in figures.items()],
                ["day", "metric"], ["value", "computed_at"]))
        sketch = await activity.dump_sketch(cache, day)
        if sketch is not None:
            await session.execute(_upsert(
                session, ActiveUserSketch, [{"day": day, "sketch": sketch, "updated_at": now}],
                ["day"], ["sketch", "updated_at"]))
    return figures


async def recompute_recent(resources: Resources) -> dict[str, dict[str, int]]:
    """Beat: yesterday (its last minutes and late rows) and today so far."""
    today = activity.shanghai_day()
    out = {}
    for day in (today - dt.timedelta(days=1), today):
        out[day.isoformat()] = await compute_day(resources, day)
    return out


def _backfill_days(resources: Resources, first: dt.date, last: dt.date) -> list[dt.date]:
    days = days_between(first, last, resources.settings.stats_max_days)
    if last > activity.shanghai_day():
        raise StatsRangeInvalid(errors=[field_error("to", "is in the future")])
    return days


async def request_backfill(resources: Resources, body: BackfillBody) -> dict[str, Any]:
    """An admin asks for a range to be computed again: one task does it day by day."""
    days = _backfill_days(resources, body.from_, body.to)
    async with resources.db.session() as session, session.begin():
        enqueue_task(session, "default.stats_backfill", body.from_.isoformat(),
                     body.to.isoformat())
    return {"from": body.from_.isoformat(), "to": body.to.isoformat(), "days": len(days),
            "queued": True}


async def backfill(resources: Resources, first: dt.date, last: dt.date) -> int:
    """Compute every day of the range (the task's work); returns the number of days."""
    days = _backfill_days(resources, first, last)
    for day in days:
        await compute_day(resources, day)
    return len(days)


# -- reading -----------------------------------------------------------------------------------


def metric_views(wanted: list[str]) -> list[dict[str, str]]:
    return [{"name": m.name, "label": m.label, "unit": m.unit}
            for m in registered() if m.name in wanted]


async def read_days(resources: Resources, days: list[dt.date],
                    wanted: list[str]) -> dict[dt.date, dict[str, Any]]:
    """The stored figures of `days` (a day or metric not computed yet: None), with the
    newest computed_at of each day."""
    table: dict[dt.date, dict[str, Any]] = {
        d: {**{m: None for m in wanted}, "computed_at": None} for d in days}
    async with resources.db.session() as session:
        rows = (await session.execute(select(DailyStat).where(
            DailyStat.day >= days[0], DailyStat.day <= days[-1],
            DailyStat.metric.in_(wanted)))).scalars()
        for row in rows:
            entry = table.get(row.day)
            if entry is None:
                continue
            entry[row.metric] = int(row.value)
            if entry["computed_at"] is None or row.computed_at > entry["computed_at"]:
                entry["computed_at"] = row.computed_at
    return table


async def daily_report(resources: Resources, query: RangeQuery) -> dict[str, Any]:
    """GET /v1/admin/stats/daily: a row per day of the range, a column per metric."""
    days = days_between(query.from_, query.to, resources.settings.stats_max_days)
    wanted = wanted_metrics(query.metrics)
    table = await read_days(resources, days, wanted)
    return {"from": query.from_.isoformat(), "to": query.to.isoformat(),
            "metrics": metric_views(wanted),
            "days": [{"day": d.isoformat(), **{m: table[d][m] for m in wanted},
                      "computed_at": table[d]["computed_at"]} for d in days]}


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(value: Any) -> str:
    """One cell, safe to open in a spreadsheet: text that a spreadsheet would run as a formula
    is quoted with a leading apostrophe (OWASP's CSV injection advice); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


async def daily_csv(resources: Resources, query: RangeQuery) -> tuple[str, bytes]:
    """The same report as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese
    labels): a header of names, a header of labels, a row per day. Returns (file name,
    bytes)."""
    report = await daily_report(resources, query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    metrics = report["metrics"]
    writer.writerow([csv_cell(v) for v in ["day", *(m["name"] for m in metrics)]])
    writer.writerow([csv_cell(v) for v in ["日期", *(m["label"] for m in metrics)]])
    for row in report["days"]:
        writer.writerow([csv_cell(row["day"]), *(csv_cell(row[m["name"]]) for m in metrics)])
    name = f"pawhome-daily-{report['from']}-{report['to']}.csv"
    return name, ("\ufeff" + out.getvalue()).encode("utf-8")
