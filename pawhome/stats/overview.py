"""The dashboard's overview: today so far against yesterday (the stored figures, today's
active users live from their sketch), and the live state of the fleet — sockets per gateway
(pawhome/platform/activity.py), task queue lengths (the broker, through the installed task
dispatcher), outbox rows waiting, open dead letters (pawhome/platform/deadletters.py).

The same figures are Prometheus gauges, set when /metrics is scraped (`on_scrape`):
`pawhome_stats_daily{metric, day="today"|"yesterday"}`, `pawhome_dead_letters_open` and
`pawhome_task_queue_waiting{queue}` (left unset when the broker does not answer in time).
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import func, select

from models.platform import OutboxMessage
from pawhome.platform import activity, deadletters
from pawhome.platform.metrics import REGISTRY, on_scrape
from pawhome.platform.pagination import PageQuery
from pawhome.platform.resources import Resources
from pawhome.stats.daily import metric_views, read_days
from pawhome.stats.metrics import names

QUEUE_TIMEOUT = 3.0  # seconds the broker has to answer the queue lengths

STATS_DAILY = Gauge("pawhome_stats_daily", "Daily business figures of today so far and "
                    "yesterday (Asia/Shanghai; docs/statistics.md)", ["metric", "day"],
                    registry=REGISTRY)
DEAD_LETTERS_OPEN = Gauge("pawhome_dead_letters_open", "Dead-letter tasks not retried yet",
                          registry=REGISTRY)
QUEUE_WAITING = Gauge("pawhome_task_queue_waiting", "Messages waiting in each task queue of "
                      "the broker", ["queue"], registry=REGISTRY)


async def task_queues(resources: Resources) -> dict[str, Any]:
    """Messages waiting per task queue, read in a thread (the broker client blocks); embedded
    mode has no broker (tasks run in-process). Also the console's dashboard."""
    if not resources.settings.broker_url:
        return {"broker": "in-process", "lengths": {}}
    loop = asyncio.get_running_loop()
    try:
        lengths = await asyncio.wait_for(loop.run_in_executor(
            None, resources.dispatcher.queue_lengths, resources.settings), QUEUE_TIMEOUT)
    except Exception as error:
        return {"broker": "unreachable", "error": type(error).__name__, "lengths": {}}
    return {"broker": "ok", "lengths": lengths}


async def _two_days(resources: Resources) -> tuple[dt.date, dict[dt.date, dict[str, Any]]]:
    today = activity.shanghai_day()
    table = await read_days(resources, [today - dt.timedelta(days=1), today], names())
    return today, table


async def overview(resources: Resources) -> dict[str, Any]:
    """GET /v1/admin/stats/overview."""
    today, table = await _two_days(resources)
    now_figures, before = table[today], table[today - dt.timedelta(days=1)]
    live_dau = await activity.count_active(resources.cache, [today])
    if live_dau is not None:
        now_figures["dau"] = live_dau
    gateways = await activity.gateway_sockets(resources.cache)
    letters = await deadletters.list_dead_letters(resources, PageQuery(page=1, limit=5),
                                                  state="open")
    async with resources.db.session() as session:
        outbox = int((await session.execute(select(func.count(OutboxMessage.id)))).scalar_one())
    return {
        "metrics": metric_views(names()),
        "today": {"day": today.isoformat(), **now_figures},
        "yesterday": {"day": (today - dt.timedelta(days=1)).isoformat(), **before},
        "live": {
            "gateways": gateways,
            "connections": sum(g["connections"] for g in gateways),
            "queues": await task_queues(resources),
            "outbox_pending": outbox,
            "dead_letters": {"open": letters["total"],
                             "latest": [{"id": d["id"], "task_name": d["task_name"],
                                         "failed_at": d["failed_at"]}
                                        for d in letters["items"]]},
        },
    }


@on_scrape
async def set_gauges(resources: Resources) -> None:
    """Before a scrape: the stored figures of today and yesterday, open dead letters, the
    task queues' lengths."""
    today, table = await _two_days(resources)
    for day, label in ((today, "today"), (today - dt.timedelta(days=1), "yesterday")):
        for name, value in table[day].items():
            if name != "computed_at" and value is not None:
                STATS_DAILY.labels(metric=name, day=label).set(value)
    letters = await deadletters.list_dead_letters(resources, PageQuery(page=1, limit=1),
                                                  state="open")
    DEAD_LETTERS_OPEN.set(letters["total"])
    queues = await task_queues(resources)
    for queue, waiting in queues["lengths"].items():
        QUEUE_WAITING.labels(queue=queue).set(waiting)
