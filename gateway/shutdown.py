"""Graceful shutdown: the in-flight request count, the WebSocket close code, signal wiring.

Gateway.shutdown (gateway/app.py) stops accepting, waits for `InflightRequests` to drain
within SHUTDOWN_GRACE_SECONDS, and closes every WebSocket with GOING_AWAY_CODE, a share at a
time (`drain_window`, `closing_due`); see docs/realtime.md for what a client does when it
receives it.
"""
from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Callable, Sequence
from typing import Any

# WebSocket close code sent to every client when a gateway process stops: 1001 "going away"
# (RFC 6455). Clients reconnect, through nginx, to another gateway process.
GOING_AWAY_CODE = 1001
GOING_AWAY_REASON = "server restarting, reconnect"


# How often a paced drain closes its next share of sockets.
DRAIN_TICK_SECONDS = 0.05


def drain_window(sockets: int, per_second: float, grace_seconds: float) -> float:
    """Seconds over which a stopping process closes `sockets` WebSockets: at `per_second`
    (WS_DRAIN_PER_SECOND), so the other processes take the reconnects at a pace they can
    answer instead of all at once, but within half the grace (the rest is for the close
    handshakes and the last requests). 0: all at once."""
    if per_second <= 0 or sockets <= 0:
        return 0.0
    return min(sockets / per_second, grace_seconds / 2)


def closing_due(sockets: int, elapsed: float, window: float) -> int:
    """How many of `sockets` should be closed `elapsed` seconds into a drain of `window`
    seconds: a share per tick, the first at once, all of them by the window's end."""
    if window <= 0:
        return sockets
    return min(sockets, math.ceil(sockets * (elapsed + DRAIN_TICK_SECONDS) / window))


async def close_paced(sockets: Sequence[Any], window: float,
                      close: Callable[[Any], bool],
                      closed_share: Callable[[int], None] | None = None) -> int:
    """Close `sockets` a share every DRAIN_TICK_SECONDS (`closing_due`), all of them within
    `window` seconds (0: at once): the shutdown's drain and the rebalancing's shedding.
    `close(socket)` closes one and says whether it did (False: it was gone already);
    `closed_share(n)` hears how many each share closed. Returns how many were closed."""
    started = asyncio.get_running_loop().time()
    done = closed = 0
    while done < len(sockets):
        due = closing_due(len(sockets), asyncio.get_running_loop().time() - started, window)
        share = sum(1 for socket in sockets[done:due] if close(socket))
        done = max(done, due)
        closed += share
        if closed_share is not None:
            closed_share(share)
        if done < len(sockets):
            await asyncio.sleep(DRAIN_TICK_SECONDS)
    return closed


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
