"""Socket rebalancing across gateway processes: a loaded process hands sockets back.

Sockets are long-lived, so nginx's `least_conn` only balances them when they connect: after a
restart the clients that failed over to the other processes stay there (docs/scaling.md).
Every WS_REBALANCE_INTERVAL_SECONDS each process reports its socket count and reads its live
peers' (`pawhome.platform.activity`, the same entries the console shows); a process above the
mean by more than the slack closes a paced share of its excess with 1012 "service restart",
idle sockets first. Their clients reconnect after a short jitter, nginx sends them to the
least loaded process, and they resume from their last event (docs/realtime.md).

`sockets_to_shed` is the policy (pure); `Rebalancer` is the timer a gateway runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.shutdown import close_paced
from pawhome.platform import activity
from pawhome.platform.cache import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from gateway.hub import Hub
    from gateway.ws_connection import Connection

log = logging.getLogger("pawhome.rebalance")

# RFC 6455 / IANA: 1012 "service restart" - the client should reconnect (docs/realtime.md).
CLOSE_REBALANCE = 1012
REBALANCE_REASON = "rebalance"


@dataclass(frozen=True)
class Policy:
    """The rebalancing settings (settings.py WS_REBALANCE_*)."""

    slack_ratio: float = 0.10  # tolerated excess over the mean, as a share of the mean ...
    slack_min: int = 50  # ... and at least this many sockets
    fraction: float = 0.5  # share of the excess closed in one tick
    max_per_tick: int = 2000  # closes in one tick (the per-second cap × the interval)


def sockets_to_shed(own: int, peers: Sequence[int], policy: Policy) -> int:
    """How many sockets a process holding `own` should close now, given its live peers'
    counts. 0 when it is alone, at or below the mean, or within the slack; otherwise a share
    of the excess, never taking it below the mean, at most `policy.max_per_tick`."""
    if not peers or own <= 0:
        return 0
    mean = (own + sum(max(0, p) for p in peers)) / (len(peers) + 1)
    excess = own - mean
    if excess <= max(policy.slack_ratio * mean, policy.slack_min, 0):
        return 0
    share = math.ceil(excess * min(1.0, max(0.0, policy.fraction)))
    return max(0, min(share, math.floor(excess), policy.max_per_tick))


def pick_sockets(connections: Iterable[Connection], count: int) -> list[Connection]:
    """`count` open sockets to close, idle ones first (nothing in flight, nothing held),
    chosen at random among equals so no user is always the one moved."""
    idle: list[Connection] = []
    busy: list[Connection] = []
    for conn in connections:
        if conn.closed:
            continue
        (idle if conn.idle else busy).append(conn)
    chosen = random.sample(idle, min(count, len(idle)))
    if len(chosen) < count:
        chosen += random.sample(busy, min(count - len(chosen), len(busy)))
    return chosen


class Rebalancer:
    """The periodic check of one gateway process (started by Gateway.start, stopped first
    thing in Gateway.shutdown: a process going away never sheds)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = hub.settings
        self._task: asyncio.Task | None = None
        self._last_close = 0.0  # time.time() of this process's last rebalance close

    @property
    def interval(self) -> float:
        return float(self.settings.ws_rebalance_interval_seconds)

    def policy(self) -> Policy:
        settings = self.settings
        return Policy(slack_ratio=settings.ws_rebalance_slack_ratio,
                      slack_min=settings.ws_rebalance_slack_min,
                      fraction=settings.ws_rebalance_fraction,
                      max_per_tick=max(1, int(settings.ws_rebalance_max_per_second *
                                              self.interval)))

    def start(self) -> None:
        if self._task is not None or not self.settings.ws_rebalance_enabled or \
                self.interval <= 0:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        # The first check waits a whole interval (jittered): peers have reported by then.
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if isinstance(error, UNAVAILABLE_ERRORS):
                    log.warning("rebalance check skipped: %r", error)
                else:
                    log.exception("rebalance check failed")

    async def tick(self) -> int:
        """One check: report this process's count, read the peers', close what the policy
        says, paced. Returns how many sockets were closed."""
        hub = self.hub
        metrics.WS_REBALANCE_CHECKS.inc()
        # Fresh counts every tick (presence alone refreshes them every heartbeat, 25 s).
        await hub.report_sockets(ttl_seconds=3 * max(self.interval, hub.presence_interval))
        entries = await activity.gateway_sockets(hub.cache)
        peers = [e for e in entries if e["gateway"] != hub.gateway_id]
        settled = (self._last_close + self.interval / 2) * 1000
        if self._last_close and any(e["reported_at"] < settled for e in peers):
            # The clients moved by the last tick may not all be counted by their new process
            # yet (they reconnect after a jitter): deciding now could move more than the
            # excess. Wait for every peer's report from half an interval after the closes.
            return 0
        own = hub.socket_count()
        count = sockets_to_shed(own, [e["connections"] for e in peers], self.policy())
        if count <= 0:
            return 0
        closed = await self._shed(count)
        mean = (own + sum(e["connections"] for e in peers)) / (len(peers) + 1)
        log.info("rebalance: closed %d of %d sockets (mean of %d live gateways %.0f)",
                 closed, own, len(peers) + 1, mean,
                 extra={"fields": {"closed": closed, "sockets": own, "gateways": len(peers) + 1,
                                   "mean": round(mean)}})
        return closed

    async def _shed(self, count: int) -> int:
        """Close `count` sockets with 1012, at most WS_REBALANCE_MAX_PER_SECOND a second."""
        victims = pick_sockets(self.hub.connections(), count)

        def close(conn: Connection) -> bool:
            if conn.closed:  # its client left meanwhile
                return False
            conn.close(CLOSE_REBALANCE, REBALANCE_REASON)
            return True

        def closed_share(share: int) -> None:
            metrics.WS_REBALANCED.inc(share)
            self._last_close = time.time()

        return await close_paced(victims, len(victims) / self.settings.ws_rebalance_max_per_second,
                                 close, closed_share)
