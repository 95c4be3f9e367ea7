"""Graceful shutdown: the in-flight request count, the WebSocket close code, signal wiring.

Gateway.shutdown (gateway/app.py) stops accepting, waits for `InflightRequests` to drain
within SHUTDOWN_GRACE_SECONDS, and closes every WebSocket with GOING_AWAY_CODE; see
docs/realtime.md for what a client does when it receives it.
"""
from __future__ import annotations

import asyncio
import signal

# WebSocket close code sent to every client when a gateway process stops: 1001 "going away"
# (RFC 6455). Clients reconnect, through nginx, to another gateway process.
GOING_AWAY_CODE = 1001
GOING_AWAY_REASON = "server restarting, reconnect"


class InflightRequests:
    """How many REST requests this process is answering; ApiHandler enters and leaves."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when no request is in flight, False if `timeout` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout))
            return True
        except TimeoutError:
            return False


def stop_signal() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the one signal wiring every gateway entry point uses."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
