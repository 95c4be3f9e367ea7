"""Statistics endpoints for the admin console (docs/statistics.md): daily figures by date
range (JSON and CSV), the overview (today against yesterday, the live fleet), and a backfill
of a range by the beat job's code."""
from __future__ import annotations

from gateway.handler import ApiHandler, endpoint
from gateway.openapi import RawBody
from pawhome.platform.errors import StatsRangeInvalid, ValidationFailed
from pawhome.stats import daily, overview

TAGS = ("admin", "stats")
ADMIN = ("admin",)


class DailyStatsHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=daily.RangeQuery, tags=TAGS,
              errors=(StatsRangeInvalid, ValidationFailed),
              refuses={"to": "from <= to, at most 366 days",
                       "metrics": "only registered metric names"},
              summary="Daily figures (Asia/Shanghai days) from `from` to `to`: a row per day, "
                      "a column per metric; null where not computed")
    async def get(self) -> None:
        self.ok(await daily.daily_report(self.r, self.query))


class DailyStatsCsvHandler(ApiHandler):
    @endpoint(roles=ADMIN, query=daily.RangeQuery, tags=TAGS,
              errors=(StatsRangeInvalid, ValidationFailed),
              refuses={"to": "from <= to, at most 366 days",
                       "metrics": "only registered metric names"},
              response=RawBody("text/csv", {"type": "string"}),
              summary="The daily figures as a CSV file (UTF-8 with BOM; names, then labels, "
                      "then a row per day)")
    async def get(self) -> None:
        name, data = await daily.daily_csv(self.r, self.query)
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


class StatsOverviewHandler(ApiHandler):
    @endpoint(roles=ADMIN, tags=TAGS,
              summary="Today so far against yesterday, sockets per gateway, task queue "
                      "lengths, outbox rows waiting and open dead letters")
    async def get(self) -> None:
        self.ok(await overview.overview(self.r))


class StatsBackfillHandler(ApiHandler):
    @endpoint(roles=ADMIN, body=daily.BackfillBody, tags=TAGS, status=202,
              errors=(StatsRangeInvalid,), refuses={"to": "from <= to <= today, 366 days"},
              summary="Compute the daily figures of a range again (queued; each day replaces "
                      "its figures)")
    async def post(self) -> None:
        self.ok(await daily.request_backfill(self.r, self.body), status=202)
