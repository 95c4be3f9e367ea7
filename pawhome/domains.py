"""Every domain module, imported once so their registrations are in place.

Domain modules register things when imported: hook connections (pawhome/platform/hooks.py),
event schemas, live-topic kinds, chat attachment checks. The composition roots (the gateway's
`make_app`, the Celery app, the demo seeder) import this module, so a worker that runs one
task has the same wiring as the gateway that serves every route. A new domain module that
registers anything is added here.
"""
from pawhome.activities import jobs as activity_jobs  # noqa: F401
from pawhome.activities import organising, registrations  # noqa: F401
from pawhome.activities import payables as activity_payables  # noqa: F401
from pawhome.booking import appointment_states, appointments, deposit_payments, holds  # noqa: F401
from pawhome.booking import reviews as booking_reviews  # noqa: F401
from pawhome.community import (  # noqa: F401
    boards,
    comment_threads,
    comments,
    counters,
    favorites,
    feed_cache,
    feeds,
    follows,
    likes,
    pets,
    post_rendering,
    post_search,
    post_topics,
    posts,
)
from pawhome.console import live as console_live  # noqa: F401
from pawhome.console import staff as console_staff  # noqa: F401
from pawhome.feedback import states as feedback_states  # noqa: F401
from pawhome.feedback import tickets as feedback_tickets  # noqa: F401
from pawhome.identity import auth, sms, tokens, user_search, users  # noqa: F401
from pawhome.integrations import storage, wechat  # noqa: F401
from pawhome.mall import (  # noqa: F401  # noqa: F401
    categories,
    checkout,
    order_payments,
    order_states,
    order_views,
    orders,
    product_favorites,
    product_search,
    product_views,
    products,
    refunds,
)
from pawhome.mall import reviews as mall_reviews  # noqa: F401
from pawhome.media import files, processing, uploads  # noqa: F401
from pawhome.messaging import chat, chat_writer, notifications, subscribe_messages  # noqa: F401
from pawhome.moderation import (  # noqa: F401
    appointment_reviews,
    buyer_reviews,
    decisions,
    product_reviews,
    reports,
    reviews,
)
from pawhome.payments import alerts, jobs, notifies, payables, payments, reconciliation, settlement  # noqa: F401
from pawhome.points import earning, expiry, inventory, ledger, payment  # noqa: F401
from pawhome.points import reconciliation as points_reconciliation  # noqa: F401
from pawhome.points import rules as points_rules  # noqa: F401
from pawhome.promotions import coupons, coupons_checkout, groupbuy, groupbuy_checkout  # noqa: F401
from pawhome.search import index  # noqa: F401
from pawhome.stats import daily as stats_daily  # noqa: F401
from pawhome.stats import metrics as stats_metrics  # noqa: F401
from pawhome.stats import overview as stats_overview  # noqa: F401
from pawhome.virtualpet import adoption, checkin, generation, hunger, interactions, leaderboards  # noqa: F401
from pawhome.virtualpet import pets as virtual_pets  # noqa: F401
