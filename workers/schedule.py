"""The Celery beat schedule: every periodic job, in one place.

Each entry names a small idempotent task; running one twice, or late, is harmless. Intervals
that depend on the deployment come from settings.
"""
from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from settings import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        # Safety net: gateways relay the outbox continuously; this covers "no gateway running".
        "relay-outbox": {
            "task": "default.relay_outbox",
            "schedule": settings.outbox_relay_beat_seconds,
        },
        # The refresh itself decides whether the token is near expiry
        # (pawhome/integrations/wechat.py);
        # checking every minute keeps a refresh well inside WECHAT_TOKEN_REFRESH_MARGIN.
        "refresh-wechat-token": {
            "task": "notify.refresh_wechat_token",
            "schedule": 60.0,
            "options": {"expires": 55},
        },
        "flush-post-views": {"task": "default.flush_post_views",
                             "schedule": settings.feed_view_flush_seconds},
        "recompute-hot-posts": {"task": "default.recompute_hot_posts",
                                "schedule": settings.feed_hot_recompute_seconds},
        "reconcile-counters": {"task": "default.reconcile_counters",
                               "schedule": settings.counter_reconcile_seconds},
        # The net under each order's own timeout task (docs/mall.md "Auto-cancel").
        "sweep-orders": {"task": "default.sweep_orders",
                         "schedule": settings.order_sweep_seconds},
        # The net under each group's own expiry task (docs/promotions.md "Group-buy").
        "sweep-group-buys": {"task": "default.sweep_group_buys",
                             "schedule": settings.group_buy_sweep_seconds},
        # Booking reminders that are due (docs/booking.md "Reminders").
        "send-booking-reminders": {"task": "default.send_booking_reminders",
                                   "schedule": settings.booking_reminder_sweep_seconds},
        # Appointment notifications whose task was lost (docs/booking.md "Notifications").
        "send-overdue-appointment-notices": {
            "task": "default.send_overdue_appointment_notices",
            "schedule": settings.booking_reminder_sweep_seconds},
        # Virtual pets that got hungry (docs/virtual-pet.md "Hungry reminders").
        "send-hungry-pet-reminders": {"task": "default.send_hungry_pet_reminders",
                                      "schedule": settings.vpet_hungry_sweep_seconds},
        # Booking holds past their time free their slots (docs/booking.md).
        "release-expired-holds": {"task": "default.release_expired_holds",
                                  "schedule": settings.booking_sweep_seconds},
        # Virtual pet generations nobody adopted in time (docs/virtual-pet.md).
        "expire-pet-generations": {"task": "ai.expire_generations",
                                   "schedule": settings.vpet_generation_sweep_seconds},
        # Virtual pet (docs/virtual-pet.md): check-in reminders whose hour has come, and the
        # leaderboards rebuilt from the database (so Redis losing them heals).
        "send-checkin-reminders": {"task": "default.send_checkin_reminders",
                                   "schedule": settings.checkin_reminder_sweep_seconds},
        "rebuild-leaderboards": {"task": "default.rebuild_leaderboards",
                                 "schedule": settings.leaderboard_rebuild_seconds},
        # Activities (docs/activities.md): unpaid seats freed, reminders, finishing.
        "activities-sweep": {"task": "activities.sweep",
                             "schedule": settings.activity_sweep_seconds,
                             "options": {"expires": settings.activity_sweep_seconds}},
        "purge-abandoned-uploads": {"task": "media.purge_abandoned_uploads",
                                    "schedule": crontab(minute=37)},
        "expire-media-checks": {"task": "moderation.expire_media_checks",
                                "schedule": settings.moderation_media_check_sweep_seconds},
        "purge-expired-idempotency-records": {
            "task": "default.purge_expired_idempotency_records",
            "schedule": crontab(minute=7),
        },
        "purge-expired-refresh-tokens": {
            "task": "default.purge_expired_refresh_tokens",
            "schedule": crontab(minute=17),
        },
        "purge-resolved-dead-letters": {
            "task": "default.purge_resolved_dead_letters",
            "schedule": crontab(hour=4, minute=27),
        },
        # -- mall: the catalogue --
        "flush-product-footprints": {"task": "default.flush_product_footprints",
                                     "schedule": settings.product_footprint_flush_seconds},
        # Payments (pawhome/payments/jobs.py, reconciliation.py): missing notifies, stuck
        # refunds, and yesterday's trade bill once WeChat has it (celery's timezone is
        # Asia/Shanghai, the bill's).
        "payments-query-unpaid": {"task": "payments.query_unpaid",
                                  "schedule": settings.payment_query_sweep_seconds,
                                  "options": {"expires": settings.payment_query_sweep_seconds}},
        "payments-query-stuck-refunds": {
            "task": "payments.query_stuck_refunds",
            "schedule": settings.payment_query_sweep_seconds,
            "options": {"expires": settings.payment_query_sweep_seconds}},
        # Points (pawhome/points/reconciliation.py): balances against their ledger, nightly.
        "points-expire": {"task": "default.expire_points",
                          "schedule": crontab(hour=settings.points_expire_hour,
                                              minute=settings.points_expire_minute)},
        "points-reconcile": {"task": "default.reconcile_points",
                             "schedule": crontab(hour=settings.points_reconcile_hour,
                                                 minute=settings.points_reconcile_minute)},
        # Statistics (pawhome/stats/daily.py): yesterday's and today's figures again.
        "stats-recompute-recent": {"task": "default.stats_recompute_recent",
                                   "schedule": settings.stats_recompute_seconds,
                                   "options": {"expires": settings.stats_recompute_seconds}},
        "payments-reconcile-yesterday": {
            "task": "payments.reconcile_yesterday",
            "schedule": crontab(hour=settings.payment_reconcile_hour,
                                minute=settings.payment_reconcile_minute)},
    }
