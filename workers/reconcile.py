"""The counter reconciliation job (beat, default queue): recount likes, comments, favorites,
replies and profile counters from their rows and repair any drift.

Counters are kept exact in the write path (pawhome/community/likes.py and friends); this job is the
proof and the safety net. It logs and counts what it fixed: a non-zero figure is a bug to
chase (or a hand edit), never routine.
"""
from __future__ import annotations

import logging

from prometheus_client import Counter

from workers import runtime
from workers.base import PERIODIC
from workers.celery_app import celery_app

log = logging.getLogger("pawhome.tasks.reconcile")

COUNTERS_REPAIRED = Counter("pawhome_counters_repaired_total",
                            "Denormalised counters found wrong and repaired, by table", ["kind"])


async def reconcile_counters_now(resources) -> dict[str, dict[str, int]]:
    """One full pass; returns {"checked": {kind: n}, "fixed": {kind: n}}."""
    from pawhome.community.counters import reconcile_all

    report = await reconcile_all(resources.db, resources.settings.counter_reconcile_batch)
    for kind, fixed in report.fixed.items():
        if fixed:
            COUNTERS_REPAIRED.labels(kind=kind).inc(fixed)
    level = logging.WARNING if report.total_fixed else logging.INFO
    log.log(level, "counter reconciliation: checked %s, repaired %s", report.checked,
            report.fixed, extra={"repaired": report.total_fixed})
    return {"checked": report.checked, "fixed": report.fixed}


@celery_app.task(name="default.reconcile_counters", **PERIODIC)
def reconcile_counters() -> dict[str, dict[str, int]]:
    return runtime.run(reconcile_counters_now(runtime.resources()))
