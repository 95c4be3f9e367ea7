"""Liveness, readiness and metrics endpoints (no auth, no rate limit: for probes/scrapers)."""
from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.handler import ApiHandler, endpoint
from gateway.openapi import RawBody
from pawhome.platform import codec
from pawhome.platform.metrics import OUTBOX_PENDING, REGISTRY, run_scrape_hooks


class HealthzHandler(ApiHandler):
    @endpoint(auth=False, summary="Process is alive", tags=("ops",))
    async def get(self) -> None:
        self.ok({"status": "ok"})


class ReadyzHandler(ApiHandler):
    @endpoint(auth=False, summary="Database, Redis and broker are reachable", tags=("ops",),
              description="200 when every dependency answers; 503 naming the ones that failed.")
    async def get(self) -> None:
        checks = {"database": self.r.db.ping(), "redis": self.r.cache.ping(),
                  "broker": self.application.settings["broker_check"]()}
        timeout = 3.0
        results = await asyncio.gather(
            *(asyncio.wait_for(c, timeout) for c in checks.values()), return_exceptions=True)
        report = {}
        for name, result in zip(checks, results, strict=True):
            report[name] = "ok" if not isinstance(result, BaseException) else (
                f"unreachable: {type(result).__name__}")
        failed = [name for name, state in report.items() if state != "ok"]
        if self.application.settings.get("shutting_down"):
            failed.append("shutting_down")
        if failed:
            self.set_status(503)
            self.finish(codec.dumps({"code": 50300, "message": "not ready: " + ", ".join(failed),
                                     "errors": [{"field": n, "message": report.get(n, n)}
                                                for n in failed], "data": report}))
            return
        self.ok(report)


class MetricsHandler(ApiHandler):
    @endpoint(auth=False, summary="Prometheus metrics of this process", tags=("ops",),
              response=RawBody("text/plain", {"type": "string"}))
    async def get(self) -> None:
        # Counted when scraped; a scrape must not fail because the database is away (the gauge
        # keeps its last value).
        with contextlib.suppress(Exception):
            OUTBOX_PENDING.set(await asyncio.wait_for(
                self.application.settings["relay"].pending(), 2.0))
        await run_scrape_hooks(self.r)  # gauges the domains read when scraped
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))


