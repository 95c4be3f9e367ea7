"""REST endpoints. `ROUTES` is the one route table; the OpenAPI document is built from it.

Route names (`area.action`) key the rate-limit table in gateway/ratelimit.py.
"""
from gateway.health import HealthzHandler, MetricsHandler, ReadyzHandler
from gateway.openapi import OpenApiHandler
from gateway.routing import route
from handlers import admin_users, auth, users
from handlers import admin_tasks
from handlers import notifications, subscriptions
from handlers import conversations
from handlers import presence, realtime

ROUTES = [
    route("/healthz", HealthzHandler, "health.healthz"),
    route("/readyz", ReadyzHandler, "health.readyz"),
    route("/metrics", MetricsHandler, "health.metrics"),
    route("/v1/openapi.json", OpenApiHandler, "openapi"),
    route("/v1/auth/dev-login", auth.DevLoginHandler, "auth.dev_login"),
    route("/v1/auth/wechat-login", auth.WeChatLoginHandler, "auth.wechat_login"),
    route("/v1/auth/phone", auth.PhoneHandler, "auth.phone"),
    route("/v1/auth/sms/send", auth.SmsSendHandler, "auth.sms_send"),
    route("/v1/auth/sms/login", auth.SmsLoginHandler, "auth.sms_login"),
    route("/v1/auth/refresh", auth.RefreshHandler, "auth.refresh"),
    route("/v1/auth/logout", auth.LogoutHandler, "auth.logout"),
    route("/v1/auth/session", auth.SessionHandler, "auth.session"),
    route("/v1/users/me", users.MeHandler, "users.me"),
    route("/v1/users/me/settings", users.MySettingsHandler, "users.settings"),
    route("/v1/users/me/blocks", users.MyBlocksHandler, "users.blocks"),
    route("/v1/users/me/blocks/{user_id:int}", users.MyBlockHandler, "users.unblock"),
    route("/v1/users/{user_id:int}", users.UserHandler, "users.detail"),
    route("/v1/users/{user_id:int}/presence", presence.PresenceHandler, "users.presence"),
    route("/v1/ws", realtime.WebSocketHandler, "ws"),
    route("/v1/admin/users", admin_users.AdminUsersHandler, "admin.users"),
    route("/v1/admin/users/{user_id:int}/ban", admin_users.AdminBanHandler, "admin.users_ban"),
    route("/v1/admin/users/{user_id:int}/unban", admin_users.AdminUnbanHandler,
          "admin.users_unban"),
    route("/v1/admin/users/{user_id:int}/role", admin_users.AdminRoleHandler,
          "admin.users_role"),
    route("/v1/conversations", conversations.ConversationsHandler, "chat.conversations"),
    route("/v1/conversations/unread-count", conversations.UnreadCountHandler, "chat.unread_count"),
    route("/v1/conversations/{conversation_id:int}", conversations.ConversationHandler,
          "chat.conversation"),
    route("/v1/conversations/{conversation_id:int}/hide", conversations.ConversationHideHandler,
          "chat.hide"),
    route("/v1/conversations/{conversation_id:int}/messages", conversations.MessagesHandler,
          "chat.messages"),
    route("/v1/conversations/{conversation_id:int}/messages/{seq:int}/recall",
          conversations.RecallHandler, "chat.recall"),
    route("/v1/conversations/{conversation_id:int}/read", conversations.ReadHandler,
          "chat.read"),
    route("/v1/notifications", notifications.NotificationsHandler, "notifications.list"),
    route("/v1/notifications/unread-count", notifications.UnreadCountHandler,
          "notifications.unread_count"),
    route("/v1/notifications/read", notifications.NotificationsReadHandler,
          "notifications.read_all"),
    route("/v1/notifications/{notification_id:int}/read", notifications.NotificationReadHandler,
          "notifications.read"),
    route("/v1/users/me/subscriptions", subscriptions.MySubscriptionsHandler,
          "users.subscriptions"),
    route("/v1/admin/notifications", notifications.AdminNotificationsHandler,
          "admin.notifications"),
    route("/v1/admin/dead-letters", admin_tasks.DeadLettersHandler, "admin.dead_letters"),
    route("/v1/admin/dead-letters/{letter_id:int}/retry", admin_tasks.DeadLetterRetryHandler,
          "admin.dead_letter_retry"),
]
