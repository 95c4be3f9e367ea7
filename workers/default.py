"""Tasks of the default queue: the outbox safety-net relay, housekeeping, the community's
periodic jobs (post views, hot scores, feed-cache drops, counter reconciliation) and the
mall's (product footprints, unpaid orders cancelled at their deadline, the order sweep,
product cache drops), the nightly points jobs (reconciliation, expiry), group-buy expiry,
and the virtual pet's check-in reminders and leaderboards.

Every job here is run by beat (workers/schedule.py) or enqueued through the outbox; each is
small and idempotent, so a late or doubled run is harmless. The community jobs' logic is in
pawhome/community/feeds.py, feed_cache.py and counters.py; housekeeping deletes in bounded batches.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from celery import shared_task
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from models.base import utcnow
from pawhome.booking import appointment_notices, holds, reminders
from pawhome.community import feed_cache, feeds
from pawhome.community.counters import reconcile_all
from pawhome.mall import orders, product_favorites, products
from pawhome.platform import deadletters, housekeeping
from pawhome.platform.outbox import OutboxRelay
from pawhome.platform.resources import Resources
from pawhome.points import expiry as points_expiry
from pawhome.points import reconciliation as points_reconciliation
from pawhome.promotions import groupbuy
from pawhome.stats import daily as stats_daily
from pawhome.virtualpet import checkin, hunger, leaderboards
from workers import runtime
from workers.base import PERIODIC

log = logging.getLogger("pawhome.tasks.reconcile")

# A relay pass moves at most OUTBOX_BATCH_SIZE rows; a run stops after this many passes so
# the task stays short (the next beat tick continues).
MAX_RELAY_PASSES = 20

COUNTERS_REPAIRED = Counter("pawhome_counters_repaired_total",
                            "Denormalised counters found wrong and repaired, by table", ["kind"])


@shared_task(name="default.ping")
def ping(value: str = "pong") -> str:
    """A no-op task used by health checks and tests to prove the worker round trip."""
    return value


@shared_task(name="default.relay_outbox", **PERIODIC)
def relay_outbox() -> int:
    """Relay due outbox rows to the broker/Redis, as the gateways do; returns rows moved."""

    async def relay() -> int:
        relay = OutboxRelay(runtime.resources())
        moved = 0
        for _ in range(MAX_RELAY_PASSES):
            batch = await relay.relay_once()
            moved += batch
            if batch < relay.settings.outbox_batch_size:
                break
        return moved

    return runtime.run(relay())


# -- housekeeping ---------------------------------------------------------------------------


def _purge_in_batches(purge: Callable[[AsyncSession, dt.datetime], Awaitable[int]],
                      now: dt.datetime) -> int:
    async def purge_all() -> int:
        total = 0
        while True:
            async with runtime.resources().db.session() as session, session.begin():
                deleted = await purge(session, now)
            total += deleted
            if deleted < 1000:
                return total

    return runtime.run(purge_all())


@shared_task(name="default.purge_expired_idempotency_records", **PERIODIC)
def purge_expired_idempotency_records() -> int:
    return _purge_in_batches(housekeeping.purge_expired_idempotency_records, utcnow())


@shared_task(name="default.purge_expired_refresh_tokens", **PERIODIC)
def purge_expired_refresh_tokens() -> int:
    return _purge_in_batches(housekeeping.purge_expired_refresh_tokens, utcnow())


@shared_task(name="default.purge_resolved_dead_letters", **PERIODIC)
def purge_resolved_dead_letters() -> int:
    days = runtime.resources().settings.dead_letter_retention_days
    return _purge_in_batches(deadletters.purge_resolved_dead_letters,
                             utcnow() - dt.timedelta(days=days))


# -- community ------------------------------------------------------------------------------


@shared_task(name="default.flush_post_views", **PERIODIC)
def flush_post_views() -> int:
    """Add the views buffered in Redis to posts.view_count; returns views written."""
    resources = runtime.resources()
    return runtime.run(feeds.flush_view_counts(resources.db, resources.cache))


@shared_task(name="default.recompute_hot_posts", **PERIODIC)
def recompute_hot_posts() -> int:
    """Rescore recent posts into the hot sorted set and reheat their topics."""
    resources = runtime.resources()
    return runtime.run(feeds.recompute_hot(resources.db, resources.cache, resources.settings))


@shared_task(name="default.drop_post_from_feeds")
def drop_post_from_feeds(post_id: int) -> None:
    """A post became visible or stopped being visible: drop the cached first pages and its
    place in the hot set (enqueued by posts.set_status with the change)."""
    runtime.run(feed_cache.drop_post_from_feeds(runtime.resources().cache, int(post_id)))


# -- counter reconciliation -----------------------------------------------------------------
# Counters are kept exact in the write path (pawhome/community/likes.py and friends); this job
# is the proof and the safety net. It logs and counts what it fixed: a non-zero figure is a
# bug to chase (or a hand edit), never routine.


async def reconcile_counters_now(resources: Resources) -> dict[str, dict[str, int]]:
    """One full pass; returns {"checked": {kind: n}, "fixed": {kind: n}}."""
    report = await reconcile_all(resources.db, resources.settings.counter_reconcile_batch)
    for kind, fixed in report.fixed.items():
        if fixed:
            COUNTERS_REPAIRED.labels(kind=kind).inc(fixed)
    level = logging.WARNING if report.total_fixed else logging.INFO
    log.log(level, "counter reconciliation: checked %s, repaired %s", report.checked,
            report.fixed, extra={"repaired": report.total_fixed})
    return {"checked": report.checked, "fixed": report.fixed}


@shared_task(name="default.reconcile_counters", **PERIODIC)
def reconcile_counters() -> dict[str, dict[str, int]]:
    return runtime.run(reconcile_counters_now(runtime.resources()))


# -- mall: the catalogue ------------------------------------------------------------------------


@shared_task(name="default.flush_product_footprints", **PERIODIC)
def flush_product_footprints() -> int:
    """Write the product footprints buffered in Redis to product_views; returns how many."""
    return runtime.run(product_favorites.flush_all_footprints(runtime.resources()))
# -- mall -------------------------------------------------------------------------------------


@shared_task(name="default.cancel_unpaid_order")
def cancel_unpaid_order(order_id: int) -> bool:
    """Queued with every order, due at its payment deadline: cancel it if still unpaid
    (a paid or already cancelled order is left alone). True if this cancelled it."""
    return runtime.run(orders.cancel_if_overdue(runtime.resources(), order_id))


@shared_task(name="default.sweep_orders", **PERIODIC)
def sweep_orders() -> dict[str, int]:
    """Beat: cancel unpaid orders past their deadline whose task was lost, and complete
    shipped orders nobody confirmed in time."""

    async def sweep() -> dict[str, int]:
        resources = runtime.resources()
        return {"cancelled": await orders.cancel_overdue(resources),
                "completed": await orders.complete_overdue(resources)}

    return runtime.run(sweep())


@shared_task(name="default.expire_group_buy")
def expire_group_buy(group_id: int) -> dict[str, int]:
    """Queued when a group opens, due when its time runs out: expire it if it did not fill,
    refund its paid members and cancel its unpaid ones (a filled group is left alone)."""
    return runtime.run(groupbuy.expire_group(runtime.resources(), group_id))


@shared_task(name="default.sweep_group_buys", **PERIODIC)
def sweep_group_buys() -> int:
    """Beat: groups past their time whose task was lost, and closed groups with members
    still to settle. Returns how many groups were settled."""
    return runtime.run(groupbuy.expire_due(runtime.resources()))


@shared_task(name="default.send_booking_reminders", **PERIODIC)
def send_booking_reminders() -> int:
    """Beat: booking reminders that are due (late ones too, after an outage), each sent once
    as an `appointment` notification (pawhome/booking/reminders.py). Returns how many."""
    return runtime.run(reminders.send_due(runtime.resources()))


@shared_task(name="default.send_hungry_pet_reminders", **PERIODIC)
def send_hungry_pet_reminders() -> int:
    """Beat: virtual pets whose fullness fell under the threshold, each owner reminded once
    (at most once a pet a day) by a `system` notification (pawhome/virtualpet/hunger.py)."""
    return runtime.run(hunger.send_due(runtime.resources()))


@shared_task(name="default.notify_appointment")
def notify_appointment(appointment_id: int) -> int:
    """Queued with each appointment transition: the `appointment` notifications of its new
    timeline entries, each written once (pawhome/booking/appointment_notices.py)."""
    return runtime.run(appointment_notices.announce(runtime.resources(), appointment_id))


@shared_task(name="default.send_overdue_appointment_notices", **PERIODIC)
def send_overdue_appointment_notices() -> int:
    """Beat: timeline entries whose notification task was lost or failed."""
    return runtime.run(appointment_notices.send_overdue(runtime.resources()))


@shared_task(name="default.release_expired_holds", **PERIODIC)
def release_expired_holds() -> int:
    """Beat: booking holds past their expiry release their slot units and boarding nights
    (a colliding hold also reclaims them in its own transaction). Returns how many."""
    return runtime.run(holds.release_expired_holds(runtime.resources()))


@shared_task(name="default.forget_products")
def forget_products(product_ids: list[int]) -> int:
    """Drop the cached pages of products whose stock moved in a worker's transaction."""

    async def forget() -> int:
        await products.forget_products(runtime.resources(), product_ids)
        return len(product_ids)

    return runtime.run(forget())


@shared_task(name="default.reconcile_points", **PERIODIC)
def reconcile_points() -> dict[str, int]:
    """Beat, nightly: every points balance against the sum of its ledger; the drift is
    reported (pawhome/points/reconciliation.py), never corrected silently."""
    report = runtime.run(points_reconciliation.reconcile(runtime.resources()))
    return {"id": report["id"], "accounts_checked": report["accounts_checked"],
            "drift_count": report["drift_count"]}


@shared_task(name="default.expire_points", **PERIODIC)
def expire_points() -> dict[str, int]:
    """Beat, nightly: points whose expiry passed leave their balances as `expired` rows
    (pawhome/points/expiry.py); a second run finds nothing more."""
    return runtime.run(points_expiry.expire_due(runtime.resources()))


@shared_task(name="default.send_checkin_reminders", **PERIODIC)
def send_checkin_reminders() -> int:
    """Beat: check-in reminders whose hour has come today, to users who have not checked in,
    once a day each (pawhome/virtualpet/checkin.py). Returns how many went out."""
    return runtime.run(checkin.send_reminders(runtime.resources()))


@shared_task(name="default.refresh_leaderboards")
def refresh_leaderboards(user_id: int, boards: list[str], at: str) -> int:
    """Queued (through the outbox) with a change of a user's scores: their entries of
    `boards` recomputed from the database (pawhome/virtualpet/leaderboards.py)."""
    return runtime.run(leaderboards.refresh_user(runtime.resources(), user_id, boards,
                                                 dt.datetime.fromisoformat(at)))


@shared_task(name="default.rebuild_leaderboards", **PERIODIC)
def rebuild_leaderboards() -> dict[str, dict[str, int]]:
    """Beat: every leaderboard rebuilt from the database and swapped in atomically."""
    return runtime.run(leaderboards.rebuild_all(runtime.resources()))


@shared_task(name="default.stats_recompute_recent", **PERIODIC)
def stats_recompute_recent() -> dict[str, dict[str, int]]:
    """Beat: yesterday's and today's daily figures computed again (pawhome/stats/daily.py)."""
    return runtime.run(stats_daily.recompute_recent(runtime.resources()))


@shared_task(name="default.stats_backfill")
def stats_backfill(first: str, last: str) -> int:
    """An admin's backfill: every day from `first` to `last` computed again."""
    return runtime.run(stats_daily.backfill(runtime.resources(), dt.date.fromisoformat(first),
                                            dt.date.fromisoformat(last)))
