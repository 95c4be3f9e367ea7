"""Graceful shutdown constants and helpers (see Gateway.shutdown and docs/realtime.md)."""
from __future__ import annotations

# WebSocket close code sent to every client when a gateway process stops: 1001 "going away"
# (RFC 6455). Clients reconnect, through nginx, to another gateway process.
GOING_AWAY_CODE = 1001
