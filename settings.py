"""Every PAWHome setting, read from the environment (or a `.env` file) in one place.

Defaults are safe for the embedded mode (`make run`: SQLite under var/, an in-process
Redis-compatible store, tasks run in-process). Production values are documented beside each
field and in docs/operations.md; `Settings.check_production()` refuses to start a production
process that still carries a development secret.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent
DEV_SECRET = "pawhome-development-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # embedded: one process, SQLite, in-process store and tasks (make run).
    # development: real MariaDB/Redis/broker, dev-login on (tests run here).
    # production: real services, dev-login absent, secrets required.
    mode: Literal["embedded", "development", "production"] = "embedded"
    log_level: str = "INFO"
    public_base_url: str = "http://127.0.0.1:8000"

    # --- data ------------------------------------------------------------------------
    # production: mysql+aiomysql://pawhome:***@db:3306/pawhome?charset=utf8mb4
    database_url: str = f"sqlite+aiosqlite:///{ROOT / 'var' / 'pawhome.db'}"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: float = 5.0
    db_connect_timeout: float = 3.0
    db_pool_recycle: int = 1800
    # Deadline of one unit of work (Database.session) on a network database: aiomysql has
    # no read timeout, so without it a frozen server would hold requests forever. 0: none.
    db_session_timeout: float = 15.0
    # Read replicas of DATABASE_URL (MariaDB GTID replication), comma-separated URLs; empty:
    # none. Only reads that ask for a replica go there (Database.replica_session: the heavy
    # scans of rebuilds and reports), and only once the replica has applied the primary's
    # position; otherwise they run on the primary. docs/scaling.md.
    database_replica_urls: str = ""
    db_replica_wait_seconds: float = 1.0  # how long a read waits for a replica to catch up
    db_replica_retry_seconds: float = 30.0  # a replica that failed is left alone this long
    # "memory://" selects the in-process store (fakeredis); production: redis://redis:6379/0
    redis_url: str = "memory://"
    redis_prefix: str = "pawhome:"
    redis_max_connections: int = 200
    redis_socket_timeout: float = 2.0
    redis_connect_timeout: float = 2.0

    # --- tasks -----------------------------------------------------------------------
    # "" runs tasks in-process (embedded); production: redis://redis:6379/1 or
    # amqp://user:***@rabbitmq:5672//
    broker_url: str = ""
    result_backend_url: str = ""
    task_queue_prefix: str = ""
    task_soft_time_limit: int = 60
    task_time_limit: int = 90
    task_max_retries: int = 5
    outbox_batch_size: int = 100
    outbox_poll_seconds: float = 2.0
    # Event rows a request delivers itself right after its commit (outbox.flush_after_commit)
    # are due for the relay only after this many seconds: the relay then delivers only what
    # a request that died (or met a Redis outage) left behind.
    outbox_claim_seconds: float = 10.0
    # Retries of transient failures: delay ~ random(0, min(max, backoff * 2**n)) seconds.
    task_retry_backoff: int = 2
    task_retry_backoff_max: int = 600
    # Redis broker: an unacked (acks_late) task is redelivered after this many seconds.
    broker_visibility_timeout: int = 3600
    # Comma-separated extra task modules a worker imports (tests load their own tasks).
    task_extra_modules: str = ""
    worker_concurrency: int = 0  # 0: one per CPU
    # Beat: how often the worker-side outbox relay runs (the gateways relay continuously).
    outbox_relay_beat_seconds: float = 30.0
    beat_schedule_file: str = str(ROOT / "var" / "celerybeat-schedule")
    dead_letter_retention_days: int = 30
    # "user:password" for Flower's basic auth; production: always set.
    flower_basic_auth: str = ""
    flower_address: str = "127.0.0.1"
    flower_url_prefix: str = ""  # e.g. "flower" when nginx serves it under /flower/

    # --- gateway ---------------------------------------------------------------------
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 64 << 20
    shutdown_grace_seconds: float = 20.0  # supervisor stopwaitsecs (30) must exceed it
    # A stopping gateway closes its WebSockets at this pace (within half the grace), so the
    # other processes take the reconnects a share at a time (gateway/app.py); 0: all at once.
    ws_drain_per_second: float = 500.0
    # Proxies in front of every gateway process that append the client's address to
    # X-Forwarded-For (gateway/server.py). 0: the TCP peer is the client and forwarded
    # headers are ignored (a gateway reachable directly). Production behind one nginx: 1
    # (and the gateway ports must be reachable only through it).
    trusted_proxy_count: int = 0
    # Request line plus headers; a bigger head is answered 400 (40003). nginx's default
    # (large_client_header_buffers 4 8k) refuses bigger heads before they get here.
    max_header_bytes: int = 32 * 1024
    # Multiplies every rate limit of gateway/ratelimit.py (windows keep their length).
    # Production: 1. The API fuzz run (tests/test_fuzz.py) sets 50 so that its thousands of
    # requests from one address and two users reach the endpoints instead of 429.
    rate_limit_scale: int = Field(1, ge=1)
    idempotency_ttl_seconds: int = 24 * 3600
    use_uvloop: bool = False
    # Connections the kernel queues for accept() per gateway process (capped by
    # net.core.somaxconn). Python's usual 128 drops SYNs when thousands of clients reconnect
    # at once after a deploy, and each dropped one waits a second or more to retry.
    # Production: 4096 (raise somaxconn to match).
    listen_backlog: int = 4096

    # --- real-time (WebSocket hub, docs/realtime.md) --------------------------------------
    ws_heartbeat_seconds: float = 25.0  # server ping interval (each connection jittered +-20%)
    ws_pong_timeout: float = 10.0  # no pong (or any frame) within this after a ping: close
    ws_auth_expiring_seconds: int = 120  # `auth.expiring` this long before the token's exp
    ws_rate: float = 20.0  # inbound frames per second per connection (token bucket) ...
    ws_burst: int = 40  # ... with this burst
    ws_flood_strikes: int = 20  # refused frames (each answered 42900) before close 4429
    ws_max_frame_bytes: int = 64 * 1024  # larger inbound frame: close 1009
    ws_max_outbound_bytes: int = 1 << 20  # unsent bytes per connection before close 4408
    ws_max_connections: int = 10000  # per gateway process; beyond it upgrades get 503
    ws_max_topics: int = 50  # live topics one connection may watch
    # Live events are held after `hello` until the client's first frame (normally `resume`)
    # or this long, so a resume replays before anything live (no reordering).
    ws_resume_grace_seconds: float = 2.0
    ws_resume_buffer_max: int = 1000  # live events held per connection during a replay
    ws_presence_ttl: int = 75  # presence entry lifetime; refreshed every heartbeat interval
    ws_last_seen_ttl: int = 90 * 24 * 3600
    ws_pubsub_backoff_max: float = 5.0  # pub/sub reconnect backoff ceiling (seconds)
    # A gateway process freezes its start-up objects (gc.freeze) and collects young objects
    # with these gc thresholds: with Python's defaults (700,10,10) full collections walked
    # every module and model and stalled the event loop 100-150 ms every few seconds under
    # chat load (bench/results/realtime_dm.md). "" keeps Python's defaults, no freeze.
    ws_gc_thresholds: str = "50000,50,100"
    # Rebalancing (gateway/rebalance.py, docs/realtime.md): every interval each gateway
    # compares its socket count with the mean of the live gateways; above it by more than
    # the slack (the larger of SLACK_RATIO × mean and SLACK_MIN sockets) it closes FRACTION
    # of the excess, at most MAX_PER_SECOND closes a second, with 1012 so the clients
    # reconnect through nginx's least_conn to a lighter process and resume. A gateway alone,
    # or shutting down, never sheds. Production: these defaults.
    ws_rebalance_enabled: bool = True
    ws_rebalance_interval_seconds: float = Field(10.0, gt=0)
    ws_rebalance_slack_ratio: float = Field(0.10, ge=0)
    ws_rebalance_slack_min: int = Field(50, ge=0)
    ws_rebalance_fraction: float = Field(0.5, gt=0, le=1)
    ws_rebalance_max_per_second: float = Field(200.0, gt=0)

    # --- auth ------------------------------------------------------------------------
    jwt_secret: str = DEV_SECRET
    access_token_ttl: int = 2 * 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    dev_login_enabled: bool | None = None  # None: on unless mode == production

    # --- WeChat ----------------------------------------------------------------------
    wechat_appid: str = "wx-dev-appid"
    wechat_secret: str = "wx-dev-secret"
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_timeout: float = 5.0
    wechat_token_refresh_margin: int = 300
    # How long a login's session_key is kept server-side (for decrypting encryptedData).
    wechat_session_key_ttl: int = 3 * 24 * 3600

    # --- SMS -------------------------------------------------------------------------
    sms_provider: Literal["log", "http"] = "log"
    sms_api_base: str = ""
    sms_api_key: str = ""
    sms_code_ttl: int = 300
    sms_max_attempts: int = 5
    sms_resend_seconds: int = 60

    # --- event streams (pawhome/platform/streams.py) -------------------------------------------
    events_retention_count: int = 1000  # events kept per user for resume
    events_retention_seconds: int = 3 * 24 * 3600  # and none older than this
    events_dedup_seconds: int = 3600  # how long a redelivered event id is recognised

    # --- direct messages (pawhome/messaging/chat.py) -------------------------------------------
    chat_max_text: int = 1000  # characters in one text message
    chat_recall_seconds: int = 120  # a sender may recall a message this long after sending
    chat_typing_interval: float = 3.0  # at most one typing relay per conversation and sender
    chat_unread_top: int = 20  # conversations listed by GET /v1/conversations/unread-count
    # Socket sends queued while a batch is written go into the next transaction together
    # (pawhome/messaging/chat_writer.py), at most this many per transaction; 1 = every send on its
    # own
    # (the REST path's way). Production: the default.
    chat_group_commit_max: int = 200
    # Batches one process may write at once, each on its own connection: a second starts
    # only when sends back up behind a slow one (row locks keep seqs gap-free).
    chat_group_commit_lanes: int = 2
    # Under sustained traffic (a batch written in the last CHAT_GROUP_COMMIT_BUSY_SECONDS),
    # a lane that finds fewer than CHAT_GROUP_COMMIT_GATHER sends queued waits this long for
    # more before it writes: fewer, larger transactions at moderate rates — about half the
    # gateway's and MariaDB's CPU per message at 1,000/s (bench/results/realtime_dm.md) —
    # for that much latency. A send after a quiet spell is written at once. 0 = never wait.
    chat_group_commit_wait_ms: float = 10.0
    chat_group_commit_gather: int = 32
    chat_group_commit_busy_seconds: float = 0.25

    # --- notifications, live topics, subscribe messages (docs/notifications.md) --------
    # An unread notification with the same group_key updated within this window absorbs a
    # new one ("A and 99 others liked your post") instead of adding a row.
    notify_coalesce_seconds: int = 3600
    # Live counters (post likes, ...) are published at most once per this many seconds per
    # topic, across every process; the last value is always delivered.
    topic_counter_interval: float = 1.0
    # A subscribe message goes out only if the user is still offline this long after the
    # message or notification (the notify task's countdown).
    subscribe_grace_seconds: float = 60.0
    # At most one subscribe message per conversation (or per notification category) per user
    # within this many seconds.
    subscribe_quiet_seconds: int = 600
    # Most one-time authorisations kept per user and template (each "accept" adds one).
    subscribe_quota_cap: int = 50
    # formal | trial | developer: which mini-program build a tapped message opens.
    subscribe_miniprogram_state: Literal["formal", "trial", "developer"] = "formal"
    # purpose -> {template_id, page, fields: {template field -> value source}}. Purposes:
    # message (DMs) and the notification categories. Production: the template ids of the
    # mini-program's subscribe-message library, as JSON in SUBSCRIBE_TEMPLATES.
    subscribe_templates: dict = Field(default_factory=lambda: {
        "message": {"template_id": "dev-tmpl-message",
                    "page": "pages/chat/chat?conversation_id={conversation_id}",
                    "fields": {"name1": "sender_name", "thing2": "preview", "time3": "time"}},
        "comment": {"template_id": "dev-tmpl-comment",
                    "page": "pages/notifications/index?category={category}",
                    "fields": {"name1": "actor_name", "thing2": "text", "time3": "time"}},
        "order": {"template_id": "dev-tmpl-order",
                  "page": "pages/notifications/index?category={category}",
                  "fields": {"thing1": "title", "thing2": "text", "time3": "time"}},
        "appointment": {"template_id": "dev-tmpl-appointment",
                        "page": "pages/notifications/index?category={category}",
                        "fields": {"thing1": "title", "thing2": "text", "time3": "time"}},
        "system": {"template_id": "dev-tmpl-system",
                   "page": "pages/notifications/index?category={category}",
                   "fields": {"thing1": "title", "thing2": "text", "time3": "time"}},
    })

    # --- community feeds (pawhome/community/feeds.py, docs/community.md)
    # ---------------------------
    feed_cache_seconds: float = 5.0  # TTL of the cached first pages of latest/hot: staleness bound
    feed_hot_window_hours: int = 72  # posts younger than this are ranked for the hot feed
    feed_hot_set_size: int = 1000  # posts kept in the hot sorted set
    feed_hot_recompute_seconds: float = 60.0  # beat interval of the hot/heat recompute
    feed_view_flush_seconds: float = 30.0  # beat interval of the view-count flush
    feed_following_limit: int = 2000  # followees read by the following feed (fan-out on read)
    topic_heat_window_hours: int = 168  # posts younger than this heat their topics

    # --- recommendations (pawhome/recommend/, docs/recommendations.md)
    # -----------------------------------------
    recommend_pool_seconds: float = 30.0  # TTL of the shared candidate pool (hot + latest)
    recommend_hot_candidates: int = 500  # top of the hot set taken into the pool
    recommend_new_candidates: int = 300  # newest public posts taken into the pool
    recommend_profile_seconds: float = 300.0  # TTL of a viewer's cached signals
    recommend_session_seconds: int = 1800  # a feed session remembers what it served this long
    recommend_explore_share: float = 0.2  # share of each page given to new, unproven posts
    recommend_new_hours: int = 24  # a post this young with little engagement is "new"
    recommend_products_seconds: float = 300.0  # TTL of a user's ranked product ids

    # --- media (pawhome/media/uploads.py, pawhome/integrations/storage.py, docs/media.md)
    # -----------------------
    # local: files under MEDIA_ROOT, uploaded to and served by the gateway (embedded, tests);
    # cos: Tencent COS, clients PUT to presigned URLs (production).
    media_storage: Literal["local", "cos"] = "local"
    media_root: str = str(ROOT / "var" / "media")
    media_upload_url_ttl: int = 900  # seconds a presigned upload URL is valid
    media_image_max_bytes: int = 20 << 20
    media_video_max_bytes: int = 200 << 20
    media_max_pixels: int = 50_000_000  # decompression-bomb guard (width x height)
    media_variant_widths: list[int] = Field(default_factory=lambda: [240, 480, 1080])
    # An upload not completed this long after it started is deleted and failed (beat job
    # media.purge_abandoned_uploads, hourly); its presigned URL expired long before.
    media_upload_abandon_seconds: int = 24 * 3600
    media_part_min_bytes: int = 1 << 20  # every part but the last (COS: >= 1 MB)
    media_part_max_bytes: int = 16 << 20
    media_max_parts: int = 1000
    media_ffmpeg_path: str = "ffmpeg"
    media_ffprobe_path: str = "ffprobe"
    media_ffmpeg_timeout: float = 60.0
    # Base of the URLs variants are served from; "" = this gateway (local) or the bucket's
    # own domain (cos). Production: the CDN in front of the bucket.
    media_public_base_url: str = ""
    # COS: secret id/key from the environment only (COS_SECRET_ID, COS_SECRET_KEY).
    cos_region: str = "ap-guangzhou"
    cos_bucket: str = "pawhome-media-1250000000"
    cos_secret_id: str = ""
    cos_secret_key: str = ""
    cos_scheme: Literal["http", "https"] = "https"
    cos_domain: str = ""  # custom domain instead of <bucket>.cos.<region>.myqcloud.com
    cos_timeout: int = 30

    # --- moderation (pawhome/moderation/reviews.py, docs/moderation.md)
    # ----------------------------
    # Ask WeChat content security (msgSecCheck / mediaCheckAsync). Off: our word filter alone
    # decides text and images pass (embedded/offline development only).
    moderation_wechat_enabled: bool = True
    # WeChat's checks need an openid that opened the mini-program this recently (seconds);
    # otherwise content goes to our own checks and the admin review queue.
    moderation_openid_fresh_seconds: int = 2 * 3600
    # The token set in the mini-program console for message push (signature check).
    wechat_push_token: str = "dev-push-token"
    # A visible post or comment is hidden pending review after this many distinct reports.
    moderation_report_hide_threshold: int = 3
    # WeChat answers an image check (mediaCheckAsync) within 30 minutes by its documentation;
    # an image still waiting after this long (a lost push) goes to the admin review queue.
    moderation_media_check_timeout_seconds: int = 40 * 60
    moderation_media_check_sweep_seconds: float = 300.0  # how often beat looks for those

    # --- search (pawhome/search/index.py, docs/search.md) ---------------------------------------
    search_query_max_chars: int = 50  # longer queries are refused (422)
    search_query_max_words: int = 8  # segmented words per query; more are refused (422)
    search_snippet_chars: int = 80  # width of a highlighted snippet
    search_max_page: int = 50  # deepest page served: FULLTEXT offsets get slow past this
    search_recent_limit: int = 20  # recent searches kept per user (newest first)
    search_recent_ttl_seconds: int = 180 * 86400  # a user's list expires after this idle time

    # --- community interactions (pawhome/community/likes.py, comments.py, ...,
    # docs/interactions.md) --
    comment_max_length: int = 1000  # characters in one comment or reply
    comment_preview_replies: int = 3  # replies shown under each top-level comment in a list
    share_count_window_seconds: int = 600  # one user's shares of one post count once per window
    counter_reconcile_seconds: float = 600.0  # beat interval of the counter reconciliation
    counter_reconcile_batch: int = 500  # rows recounted per query by the reconciliation

    # --- mall (pawhome/mall/, docs/mall.md) ---------------------------------------------
    category_cache_seconds: int = 3600  # the category tree (dropped on every category write)
    product_list_cache_seconds: int = 300  # seed 004: product lists 5 min (dropped on change)
    product_detail_cache_seconds: int = 600  # seed 004: product detail 10 min (dropped on change)
    product_footprints_kept: int = 100  # browse footprints kept per user
    product_footprint_flush_seconds: float = 10.0  # beat: footprints buffered in Redis -> table
    address_max_per_user: int = 20
    cart_max_lines: int = 100
    cart_max_quantity: int = 999  # per line, unless the SKU's purchase limit is lower
    order_unpaid_timeout_seconds: int = 1800  # unpaid orders are cancelled after this
    order_auto_complete_days: int = 10  # shipped orders complete by themselves after this
    order_sweep_seconds: float = 60.0  # beat: unpaid orders past their deadline, due completions
    group_buy_sweep_seconds: float = 60.0  # beat: group-buys past their time to fill
    order_max_lines: int = 50  # lines in one checkout

    # --- booking (pawhome/booking/, docs/booking.md) ------------------------------------
    booking_hold_seconds: int = 300  # a held slot is kept this long for its confirmation
    booking_no_show_grace_minutes: int = 15  # no_show may be marked this long after the start
    booking_sweep_seconds: float = 60.0  # beat: expired holds release their units and nights
    booking_catalogue_cache_seconds: int = 300  # service lists, provider pages (dropped on change)
    booking_slots_cache_seconds: int = 60  # a staff-day's free starts (dropped on change)
    booking_windows_cache_seconds: int = 3600  # a staff-day's open hours (dropped on change)

    # --- virtual pet care (pawhome/virtualpet/care.py, docs/virtual-pet.md "Care") -----
    # Status points (of 100) lost per hour, before the personality's scaling.
    vpet_fullness_per_hour: float = 4.0
    vpet_cleanliness_per_hour: float = 2.0
    vpet_mood_per_hour: float = 3.0
    vpet_affection_per_hour: float = 0.5
    vpet_mood_neglect_factor: float = 2.0  # mood falls this much faster while hungry or dirty
    vpet_neglect_below: int = 30  # fullness / cleanliness under this: hungry / dirty
    vpet_hungry_threshold: int = 20  # fullness under this: the "pet hungry" reminder
    # Seconds before the same interaction again (0: none; the benchmark turns them off).
    vpet_cooldown_feeding_seconds: int = 1800
    vpet_cooldown_petting_seconds: int = 60
    vpet_cooldown_playing_seconds: int = 300
    vpet_cooldown_cleaning_seconds: int = 1800
    vpet_cooldown_training_seconds: int = 600
    vpet_detail_cache_seconds: int = 600  # a pet's stored row (dropped after every write)
    vpet_hungry_sweep_seconds: float = 60.0  # beat: hungry reminders that are due

    # --- points (pawhome/points/, docs/points.md) -------------------------------------------
    # The rules themselves (earning, caps, the payment rule, expiry) are data admins edit
    # (PUT /v1/admin/points/rules); these are the mechanics around them.
    points_balance_cache_seconds: int = 3600  # seed 004: 1 h, dropped after every change
    points_expiring_window_days: int = 30  # "expiring soon" looks this far ahead
    points_reconcile_hour: int = 3  # nightly reconciliation (Asia/Shanghai)
    points_reconcile_minute: int = 40
    points_reconcile_batch: int = 1000  # accounts compared per query
    points_expire_hour: int = 0  # nightly: points whose expiry passed leave the balance
    points_expire_minute: int = 20
    points_expire_lookback_days: int = 3  # earnings lapsed this recently are looked at

    # --- home slots (pawhome/promotions/home.py, docs/promotions.md "Home slots") ---------
    booking_reminder_sweep_seconds: float = 60.0  # beat interval of the due-reminder job
    home_mall_cache_seconds: int = 3600  # seed 004: the shared home 1 h (dropped on change)
    home_slot_size: int = 10  # products per slot (recommended, hot, group-buy, for you)
    home_new_user_days: int = 7  # a "new users only" pop-up: accounts younger than this

    # --- WeChat Pay v3 (pawhome/integrations/wechatpay.py, pawhome/payments/, docs/payments.md)
    # ----------------------------
    # "simulated": embedded mode's local payment (same notify path); production: "wechat".
    payment_provider: Literal["wechat", "simulated"] = "simulated"
    # The merchant (直连商户) and the mini-program paying through it; appid "" = wechat_appid.
    wechatpay_mchid: str = "1900000001"
    wechatpay_appid: str = ""
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    wechatpay_timeout: float = 5.0
    # Secrets, from the environment only (WECHATPAY_PRIVATE_KEY, WECHATPAY_APIV3_KEY): the
    # merchant API private key (PEM text or a file path) and its certificate's serial number,
    # which sign every request; the APIv3 key (32 characters), which decrypts notifies and
    # platform certificates.
    wechatpay_private_key: str = ""
    wechatpay_cert_serial: str = ""
    wechatpay_apiv3_key: str = ""
    # The WeChat Pay public key (PEM text or a file path) and its id (PUB_KEY_ID_...). Empty:
    # replies and notifies are verified with the platform certificates from /v3/certificates.
    # Both may be in use during a switch; Wechatpay-Serial picks one (docs/payments.md).
    wechatpay_public_key: str = ""
    wechatpay_public_key_id: str = ""
    # Platform certificates are downloaded again after this long, or at once (at most every
    # wechatpay_cert_retry_seconds) when a reply names a serial we do not hold.
    wechatpay_cert_refresh_seconds: int = 12 * 3600
    wechatpay_cert_retry_seconds: int = 60
    # Where WeChat posts results; "" = public_base_url + /v1/payments/wechat/notify (payments)
    # and + /v1/payments/wechat/refund-notify (refunds). Production: https URLs, no query.
    wechatpay_notify_url: str = ""
    wechatpay_refund_notify_url: str = ""
    # A notify or reply whose Wechatpay-Timestamp is further than this from our clock is refused.
    wechatpay_notify_max_skew_seconds: int = 300
    # payment_provider "simulated": where its development keys are kept (made on first use).
    wechatpay_sim_dir: str = str(ROOT / "var" / "wechatpay-sim")

    # --- payments flow (pawhome/payments/, docs/payments.md) ------------------------------
    # WeChat's prepay_id lives 2 h; one this close to its end (or to time_expire) is not
    # handed out again: a new prepay is asked for instead.
    payment_prepay_lifetime_seconds: int = 7200
    payment_prepay_reuse_margin_seconds: int = 300
    # Missing notifies: an unpaid prepay is queried after this long without a notify, then at
    # most every interval, in batches, until its time_expire is give_up seconds past.
    payment_query_after_seconds: int = 300
    payment_query_interval_seconds: int = 300
    payment_query_give_up_seconds: int = 86400
    payment_query_batch: int = 50
    payment_query_sweep_seconds: float = 60.0  # beat: unpaid prepays, stuck refunds
    # Refunds still pending or processing after this long are sent again or queried.
    payment_refund_query_after_seconds: int = 600
    payment_refund_query_batch: int = 50
    payment_notify_max_bytes: int = 65536  # a notify is ~1 KB; anything this big is refused
    # Daily reconciliation (Asia/Shanghai): WeChat's bill for a day is ready the next day
    # from 10:00.
    payment_reconcile_hour: int = 10
    payment_reconcile_minute: int = 30

    # --- virtual pet generation (pawhome/virtualpet/generation*.py, adoption.py,
    # docs/virtual-pet.md "Generation") ---------------------------------------------------
    vpet_generations_per_day: int = 10  # per user and Asia/Shanghai day (429 past it)
    vpet_generation_keep_hours: int = 24  # a result not adopted by then expires
    vpet_photo_max_pixels: int = 50_000_000  # a photo over this is refused before decoding
    vpet_pets_per_user: int = 3  # adopted pets a user may have (409 past it)
    vpet_generation_sweep_seconds: float = 600.0  # beat: unadopted results past their time
    # An external AI provider (POST <url> with the photo; docs/virtual-pet.md "Adapter"):
    # empty = the baseline generator alone. Any failure falls back to the baseline.
    vpet_ai_provider_url: str = ""
    vpet_ai_provider_token: str = ""  # sent as a bearer token when set
    vpet_ai_provider_timeout: float = 3.0  # seconds per attempt
    vpet_ai_provider_retries: int = 1  # further attempts after a failed one

    # --- virtual pet: check-in and leaderboards (pawhome/virtualpet/, docs/virtual-pet.md) --
    checkin_reminder_sweep_seconds: float = 300.0  # beat: reminders whose hour has come
    leaderboard_rebuild_seconds: float = 3600.0  # beat: every board rebuilt from the database

    # --- web console and staff accounts (pawhome/console/, docs/console.md) -----------
    console_session_ttl: int = 8 * 3600  # seconds a console sign-in lasts (cookie and token)
    console_max_failed_logins: int = 5  # wrong passwords in a row before the account locks
    console_lockout_seconds: int = 900  # how long a locked staff account stays locked
    # None: the session cookie is Secure unless mode is embedded or development (plain HTTP
    # on a laptop); production serves the console over HTTPS only (nginx).
    console_cookie_secure: bool | None = None
    # --- feedback (pawhome/feedback/, docs/feedback.md) ----------------------------------
    feedback_per_hour: int = 5  # submissions per user per rolling hour (429 past it)
    feedback_per_day: int = 20  # and per rolling 24 hours
    # --- activities with registration (pawhome/activities/, docs/activities.md) ----------
    activity_payment_minutes: int = 15  # a cash registration's seat waits this long for pay
    activity_sweep_seconds: float = 60.0  # beat: unpaid seats freed, reminders, finishing

    # --- statistics (pawhome/stats/, pawhome/platform/activity.py, docs/statistics.md) -----
    activity_flush_seconds: float = 5.0  # a gateway writes the users it saw this often
    stats_recompute_seconds: float = 600.0  # beat: yesterday's and today's figures again
    stats_max_days: int = 366  # the longest range a read or a backfill may ask for

    # --- misc ------------------------------------------------------------------------
    nickname_max_length: int = 20
    flower_port: int = 5555
    gateway_base_port: int = 8000
    extra: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        # Embedded mode has no WeChat to reach: content is moderated by our own checks
        # unless MODERATION_WECHAT_ENABLED is set explicitly.
        if self.mode == "embedded" and "moderation_wechat_enabled" not in self.model_fields_set:
            self.moderation_wechat_enabled = False
        return self

    @model_validator(mode="after")
    def _wechatpay_defaults(self) -> Settings:
        # WeChat Pay: the paying app is the mini-program, and WeChat posts to this gateway.
        base = self.public_base_url.rstrip("/")
        if not self.wechatpay_appid:
            self.wechatpay_appid = self.wechat_appid
        if not self.wechatpay_notify_url:
            self.wechatpay_notify_url = base + "/v1/payments/wechat/notify"
        if not self.wechatpay_refund_notify_url:
            self.wechatpay_refund_notify_url = base + "/v1/payments/wechat/refund-notify"
        return self

    @property
    def embedded(self) -> bool:
        return self.mode == "embedded"

    @property
    def dev_login(self) -> bool:
        if self.dev_login_enabled is not None:
            return self.dev_login_enabled and self.mode != "production"
        return self.mode != "production"

    @property
    def console_cookie_is_secure(self) -> bool:
        if self.console_cookie_secure is not None:
            return self.console_cookie_secure
        return self.mode == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def replica_urls(self) -> list[str]:
        return [url.strip() for url in self.database_replica_urls.split(",") if url.strip()]

    def check_production(self) -> None:
        """Refuse to run production with development secrets or the embedded stores."""
        if self.mode != "production":
            return
        problems = []
        if self.jwt_secret == DEV_SECRET or len(self.jwt_secret) < 32:
            problems.append("JWT_SECRET must be set to a random string of 32+ characters")
        if self.redis_url.startswith("memory://"):
            problems.append("REDIS_URL must point at a Redis server")
        if not self.broker_url:
            problems.append("BROKER_URL must be set")
        if self.wechat_secret == "wx-dev-secret":
            problems.append("WECHAT_SECRET must be set")
        if self.wechat_push_token == "dev-push-token":
            problems.append("WECHAT_PUSH_TOKEN must be set (content-security callbacks)")
        problems.extend(self.wechatpay_problems())
        if problems:
            raise RuntimeError("production settings are incomplete: " + "; ".join(problems))

    def wechatpay_problems(self) -> list[str]:
        """What keeps WeChat Pay from working in production (checked at start)."""
        if self.payment_provider != "wechat":
            return ["PAYMENT_PROVIDER must be wechat (the simulated provider is for development)"]
        problems = []
        if not self.wechatpay_mchid or self.wechatpay_mchid == "1900000001":
            problems.append("WECHATPAY_MCHID must be set")
        if not self.wechatpay_private_key:
            problems.append("WECHATPAY_PRIVATE_KEY must be set (PEM text or a file path)")
        if not self.wechatpay_cert_serial:
            problems.append("WECHATPAY_CERT_SERIAL must be set")
        if len(self.wechatpay_apiv3_key.encode()) != 32:
            problems.append("WECHATPAY_APIV3_KEY must be set (32 characters)")
        if bool(self.wechatpay_public_key) != bool(self.wechatpay_public_key_id):
            problems.append("WECHATPAY_PUBLIC_KEY and WECHATPAY_PUBLIC_KEY_ID go together")
        if not self.wechatpay_notify_url.startswith("https://") or \
                not self.wechatpay_refund_notify_url.startswith("https://"):
            problems.append("WECHATPAY_NOTIFY_URL and WECHATPAY_REFUND_NOTIFY_URL must be https "
                            "(set PUBLIC_BASE_URL or the URLs themselves)")
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
