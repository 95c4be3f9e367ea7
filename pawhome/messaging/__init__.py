"""Messaging: direct messages (REST and the socket's group commit), the notification centre
and WeChat subscribe messages (docs/chat.md, docs/notifications.md).
"""
