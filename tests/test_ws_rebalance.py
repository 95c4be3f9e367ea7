"""Socket rebalancing across gateway processes (gateway/rebalance.py): the policy's edge
cases, and real gateway processes handing sockets back with 1012 after a peer comes back —
the clients reconnecting as nginx's least_conn would send them, every event arriving once."""
from __future__ import annotations

import asyncio
import collections
import time
import uuid
from types import SimpleNamespace

import pytest

import wsclient
from gateway.hub import Hub
from gateway.rebalance import CLOSE_REBALANCE, Policy, Rebalancer, pick_sockets, sockets_to_shed
from pawhome.platform import activity, events
from pawhome.platform.cache import Cache
from tests.realtime_helpers import GatewayProcess, gateways, metric_value, wait_until  # noqa: F401
from tests.test_ws_churn import tokens_for

POLICY = Policy(slack_ratio=0.10, slack_min=50, fraction=0.5, max_per_tick=5000)


# -- the policy --------------------------------------------------------------------------------

def test_a_gateway_alone_never_sheds():
    assert sockets_to_shed(10_000, [], POLICY) == 0


def test_the_restart_case_sheds_half_the_excess():
    # 10,000 here, the restarted peer empty: mean 5,000, excess 5,000, half of it this tick.
    assert sockets_to_shed(10_000, [0], POLICY) == 2500


def test_balanced_or_within_the_slack_sheds_nothing():
    assert sockets_to_shed(5000, [5000], POLICY) == 0
    assert sockets_to_shed(5400, [4600], POLICY) == 0  # excess 400 < 10 % of 5,000
    assert sockets_to_shed(5600, [4400], POLICY) == 300  # excess 600 > 500: half of it
    assert sockets_to_shed(4000, [6000], POLICY) == 0  # below the mean


def test_small_clusters_stay_put_under_the_absolute_minimum():
    assert sockets_to_shed(80, [0], POLICY) == 0  # excess 40 < 50 sockets
    assert sockets_to_shed(120, [0], POLICY) == 30  # excess 60: half
    assert sockets_to_shed(0, [0, 0], POLICY) == 0


def test_never_below_the_mean_even_shedding_everything_at_once():
    everything = Policy(slack_ratio=0, slack_min=0, fraction=1.0, max_per_tick=10**9)
    assert sockets_to_shed(101, [0], everything) == 50  # mean 50.5: 51 left
    assert sockets_to_shed(3, [0, 0], everything) == 2  # mean 1
    assert sockets_to_shed(1, [0], everything) == 0  # mean 0.5: closing it would undershoot
    for own, peers in [(7, [1, 2]), (1000, [999]), (10, [0, 0, 0, 0])]:
        mean = (own + sum(peers)) / (len(peers) + 1)
        assert own - sockets_to_shed(own, peers, everything) >= mean


def test_a_tick_is_capped_and_hostile_counts_do_not_break_it():
    capped = Policy(slack_ratio=0.1, slack_min=0, fraction=1.0, max_per_tick=100)
    assert sockets_to_shed(10_000, [0], capped) == 100
    assert sockets_to_shed(10_000, [-5000], POLICY) == 2500  # a negative count reads as 0
    assert sockets_to_shed(-3, [0], POLICY) == 0
    # Three peers, one of them loaded too: only the excess over the mean of all four.
    assert sockets_to_shed(9000, [9000, 1000, 1000], POLICY) == 2000


class _Conn:
    def __init__(self, idle: bool, closed: bool = False) -> None:
        self.idle, self.closed = idle, closed
        self.closed_with: tuple[int, str, float] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed, self.closed_with = True, (code, reason, time.monotonic())


def test_idle_sockets_are_picked_first_and_closed_ones_never():
    idle = [_Conn(True) for _ in range(3)]
    busy = [_Conn(False) for _ in range(3)]
    gone = [_Conn(True, closed=True) for _ in range(5)]
    everyone = busy + gone + idle
    assert set(pick_sockets(everyone, 2)) <= set(idle)
    assert set(pick_sockets(everyone, 3)) == set(idle)
    chosen = pick_sockets(everyone, 5)
    assert set(idle) <= set(chosen) and len(chosen) == 5 and not set(chosen) & set(gone)
    assert len(pick_sockets(everyone, 50)) == 6


@pytest.mark.gen_test(timeout=30)
async def test_a_check_closes_paced_with_1012_then_waits_for_the_peers_to_count(
        own_prefix, resources):
    _prefix, cache = own_prefix
    settings = resources.settings.model_copy(update={
        "ws_rebalance_interval_seconds": 0.4, "ws_rebalance_slack_min": 0,
        "ws_rebalance_fraction": 1.0, "ws_rebalance_max_per_second": 40.0})
    hub = Hub(SimpleNamespace(cache=cache, settings=settings))
    busy = [_Conn(False) for _ in range(10)]
    idle = [_Conn(True) for _ in range(10)]
    hub.users = {n: [conn] for n, conn in enumerate(busy + idle)}  # 20 sockets, 20 users
    await activity.report_gateway(cache, "peer", 0, 0, 60)
    rebalancer = Rebalancer(hub)
    started = time.monotonic()
    assert await rebalancer.tick() == 10  # down to the mean of 20 and 0
    elapsed = time.monotonic() - started
    assert all(c.closed_with and c.closed_with[:2] == (1012, "rebalance") for c in idle)
    assert not any(c.closed for c in busy)  # the idle ones were enough
    # Paced at 40 a second: two every 50 ms, so the last of ten goes out 0.2 s after the first.
    times = sorted(c.closed_with[2] for c in idle if c.closed_with)
    assert times[-1] - times[0] >= 0.19 and elapsed >= 0.19
    for conn in idle:
        hub.users = {k: v for k, v in hub.users.items() if v[0] is not conn}
    # The peer has not reported since: its 0 is stale, so nothing more moves yet ...
    assert await rebalancer.tick() == 0
    await asyncio.sleep(0.25)
    # ... until it reports after the closes settled (half an interval): it still holds none
    # of them (their clients went elsewhere), so half of the 10 left here go.
    await activity.report_gateway(cache, "peer", 0, 0, 60)
    assert await rebalancer.tick() == 5
    assert sum(c.closed for c in busy) == 5  # no idle one left: busy ones are taken too


# -- real gateway processes ----------------------------------------------------------------

def rebalancing_env(prefix: str, **overrides: str) -> dict[str, str]:
    """Fast ticks, small slack, and a Redis prefix of the test's own: another test's killed
    gateway (its count lingers until it expires) must not count as a live peer here."""
    return {"REDIS_PREFIX": prefix, "LOG_LEVEL": "INFO",
            "WS_REBALANCE_INTERVAL_SECONDS": "0.5", "WS_REBALANCE_SLACK_MIN": "2",
            "WS_REBALANCE_SLACK_RATIO": "0.1", "WS_REBALANCE_FRACTION": "0.5",
            "WS_REBALANCE_MAX_PER_SECOND": "16", **overrides}


@pytest.fixture
def own_prefix(io_loop, resources):
    """A Redis key prefix for this test's gateways, and a Cache on it to publish with."""
    prefix = f"{resources.settings.redis_prefix}rb{uuid.uuid4().hex[:6]}:"
    cache = Cache(resources.settings.model_copy(update={"redis_prefix": prefix}))
    yield prefix, cache

    async def clean() -> None:
        async for key in cache.redis.scan_iter(match=prefix + "*", count=1000):
            await cache.redis.delete(key)
        await cache.close()
    io_loop.run_sync(clean)


class LeastConnClients:
    """One socket per user; a socket closed with 1012 reconnects (after a short jitter) to
    the gateway holding fewer of them - what nginx's least_conn does - and resumes. Every
    `test.note` each user receives is kept, across reconnects, and so is every
    `chat.message` from someone else (client_msg_id, message id)."""

    def __init__(self, tokens: list[tuple[int, str]], gateways: list[GatewayProcess]) -> None:
        self.tokens = tokens
        self.gateways = gateways
        self.where: dict[int, GatewayProcess] = {}
        self.clients: dict[int, wsclient.Client] = {}
        self.notes: dict[int, list[int]] = collections.defaultdict(list)
        self.messages: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
        self.ready: dict[int, asyncio.Event] = {}  # set while the socket is open and resumed
        self.closes: list[tuple[int | None, str | None, float]] = []
        self.answers: collections.Counter = collections.Counter()
        self.moving = 0
        self._tasks: list[asyncio.Task] = []

    def count(self, gateway: GatewayProcess) -> int:
        return sum(1 for g in self.where.values() if g is gateway)

    async def connect_all(self, gateway: GatewayProcess) -> None:
        async def one(uid: int, token: str) -> None:
            def keep(frame: dict, uid: int = uid) -> None:
                if frame.get("type") == "test.note":
                    self.notes[uid].append(frame["data"]["n"])
                elif frame.get("type") == "chat.message" and \
                        frame["data"]["sender_id"] != uid:
                    self.messages[uid].append((frame["data"]["client_msg_id"],
                                               frame["data"]["id"]))
            client = wsclient.Client(gateway.ws_url, token, on_frame=keep)
            await client.open()
            self.clients[uid], self.where[uid] = client, gateway
            self.ready[uid] = asyncio.Event()
            self.ready[uid].set()
        await asyncio.gather(*(one(uid, token) for uid, token in self.tokens))
        self._tasks += [asyncio.get_running_loop().create_task(self._follow(uid))
                       for uid, _ in self.tokens]

    async def _follow(self, uid: int) -> None:
        client = self.clients[uid]
        while True:
            await client.wait_closed(timeout=3600)
            self.ready[uid].clear()
            self.closes.append((client.close_code, client.close_reason, time.monotonic()))
            if client.close_code != CLOSE_REBALANCE:
                return
            self.moving += 1
            try:
                await asyncio.sleep(0.05 + 0.2 * (uid % 7) / 7)  # the documented jitter
                target = min(self.gateways, key=self.count)
                self.where[uid] = target
                answer = await client.reconnect(target.ws_url)
                self.answers[answer["type"]] += 1
                self.ready[uid].set()
            finally:
                self.moving -= 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients.values():
            await client.close()


async def open_sockets(gateway: GatewayProcess) -> int:
    return int(await metric_value(gateway, "pawhome_websockets_open"))


@pytest.mark.gen_test(timeout=120)
async def test_a_loaded_gateway_hands_sockets_to_a_returning_peer_and_events_arrive_once(
        gateways, resources, own_prefix):
    prefix, cache = own_prefix
    env = rebalancing_env(prefix)
    users = tokens_for(resources.settings, 30)
    loaded = await gateways.start(env=env)
    clients = LeastConnClients(users, [])
    await clients.connect_all(loaded)
    # The peer comes back (a restart of a second process): it holds nothing.
    returning = await gateways.start(env=env)
    clients.gateways = [loaded, returning]

    published: dict[int, int] = collections.defaultdict(int)
    stop = asyncio.Event()

    async def publish() -> None:  # events for every user, all through the shedding
        while not stop.is_set():
            await asyncio.gather(*(events.publish_to_user(cache, uid, "test.note",
                                                          {"n": published[uid]})
                                   for uid, _ in users))
            for uid, _ in users:
                published[uid] += 1
            await asyncio.sleep(0.02)

    publisher = asyncio.get_running_loop().create_task(publish())
    try:
        async def settled() -> bool:
            return clients.count(loaded) <= 17 and clients.moving == 0
        await wait_until(settled, timeout=30, interval=0.1, what="the loaded gateway shed")
        await asyncio.sleep(2.0)  # four more ticks: nothing more moves
    finally:
        stop.set()
        await publisher
    held = await open_sockets(loaded)
    moved = len(clients.closes)
    # Down to about the mean (15 of 30, slack 2), never below it; the peer took the rest.
    assert 15 <= held <= 17, (held, clients.closes)
    assert held == 30 - moved == clients.count(loaded)
    assert await open_sockets(returning) == moved == clients.count(returning)
    assert {(code, reason) for code, reason, _ in clients.closes} == {(1012, "rebalance")}
    assert clients.answers == {"resumed": moved}  # exact resumes, no resync
    assert await metric_value(loaded, "pawhome_ws_rebalanced_total") == moved
    assert await metric_value(loaded, "pawhome_ws_closes_total", 'code="1012"') == moved
    assert await metric_value(returning, "pawhome_ws_rebalanced_total") == 0
    # Paced: several ticks, none closing more than its cap (16/s × 0.5 s), one log line each.
    ticks = [r for r in loaded.log_records("INFO") if r["msg"].startswith("rebalance:")]
    assert sum(r["closed"] for r in ticks) == moved and len(ticks) >= 2, ticks
    assert all(0 < r["closed"] <= 8 and r["gateways"] == 2 for r in ticks), ticks
    assert all(str(uid) not in r["msg"] for r in ticks for uid, _ in users)

    # Every event published during the shedding arrives exactly once, in order.
    for uid, _ in users:
        await clients.clients[uid].wait_for("test.note", timeout=10,
                                            where=lambda f, last=published[uid] - 1:
                                            f["data"]["n"] == last)
    for uid, _ in users:
        assert clients.notes[uid] == list(range(published[uid])), uid
    await clients.close()


@pytest.mark.gen_test(timeout=120)
async def test_chat_sends_through_the_shedding_are_stored_and_delivered_once(
        api, gateways, resources, own_prefix):
    prefix, _cache = own_prefix
    env = rebalancing_env(prefix, WS_REBALANCE_SLACK_MIN="1")
    people = [await api.login() for _ in range(12)]
    loaded = await gateways.start(env=env)
    clients = LeastConnClients([(p.user_id, p.token) for p in people], [])
    await clients.connect_all(loaded)
    returning = await gateways.start(env=env)
    clients.gateways = [loaded, returning]
    acks: dict[str, set[int]] = collections.defaultdict(set)
    sent: dict[int, list[str]] = collections.defaultdict(list)
    resent: collections.Counter = collections.Counter()
    stop = asyncio.Event()

    async def chat(n: int) -> None:
        """Each person writes to the next, one message at a time; a send whose ack was lost
        with its socket is sent again with the same client_msg_id once reconnected."""
        me, to = people[n], people[(n + 1) % len(people)]
        k = 0
        while not stop.is_set():
            cmid = f"rb-{me.user_id}-{k}"
            sent[to.user_id].append(cmid)
            while True:
                await clients.ready[me.user_id].wait()
                try:
                    ack = await clients.clients[me.user_id].request(
                        "chat.send", to_user_id=to.user_id, client_msg_id=cmid, kind="text",
                        text=f"message {k}", timeout=10)
                except (wsclient.Closed, TimeoutError):
                    resent[cmid] += 1
                    await asyncio.sleep(0.05)
                    continue
                assert ack["type"] == "chat.ack", ack
                acks[cmid].add(ack["id"])
                break
            k += 1
            await asyncio.sleep(0.1)

    writers = [asyncio.get_running_loop().create_task(chat(n)) for n in range(len(people))]
    try:
        async def settled() -> bool:
            return clients.count(loaded) <= 7 and clients.moving == 0
        await wait_until(settled, timeout=30, interval=0.1, what="the loaded gateway shed")
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert 6 <= clients.count(loaded) <= 7 and len(clients.closes) >= 5, clients.closes
    assert {code for code, _, _ in clients.closes} == {CLOSE_REBALANCE}
    # Every send acked with one message id (a resend got the first ack), and every message
    # reached its recipient exactly once, across the moves of both ends.
    assert all(len(ids) == 1 for ids in acks.values()), acks
    for person in people:
        uid = person.user_id
        last = sent[uid][-1]
        await clients.clients[uid].wait_for(
            "chat.message", timeout=10,
            where=lambda f, last=last: f["data"]["client_msg_id"] == last)
        expected = [(cmid, next(iter(acks[cmid]))) for cmid in sent[uid]]
        assert clients.messages[uid] == expected, (uid, resent)
    await clients.close()


async def checks_pass(gateway: GatewayProcess, count: int) -> None:
    """Wait until `gateway` has run `count` more rebalancing checks."""
    name = "pawhome_ws_rebalance_checks_total"
    target = await metric_value(gateway, name) + count

    async def done() -> bool:
        return await metric_value(gateway, name) >= target
    await wait_until(done, timeout=30, interval=0.1, what=f"{count} rebalancing checks")


@pytest.mark.gen_test(timeout=90)
async def test_a_single_or_balanced_gateway_sheds_nothing(gateways, resources, own_prefix):
    _prefix, cache = own_prefix
    env = rebalancing_env(_prefix, WS_REBALANCE_SLACK_MIN="3")
    users = tokens_for(resources.settings, 24)
    alone = await gateways.start(env=env)
    clients = LeastConnClients(users[:12], [alone])
    await clients.connect_all(alone)
    await checks_pass(alone, 4)  # 12 sockets and no peer
    assert clients.closes == []
    await clients.close()

    # Two gateways filled as least_conn fills them, a socket every 0.1 s (slower than the
    # counts are reported, so neither ever sees the other far behind), then left balanced.
    peer = await gateways.start(env=env)
    both = [alone, peer]
    clients = LeastConnClients([], both)
    for uid, token in users:
        target = min(both, key=clients.count)
        clients.tokens = [(uid, token)]
        await clients.connect_all(target)
        await asyncio.sleep(0.1)
    clients.tokens = users

    async def both_reported() -> bool:
        return [e["connections"] for e in await activity.gateway_sockets(cache)] == [12, 12]
    await wait_until(both_reported, timeout=10, interval=0.1, what="both gateways counted")
    await checks_pass(alone, 4)
    await checks_pass(peer, 1)
    assert clients.closes == []
    for gateway in both:
        assert await metric_value(gateway, "pawhome_ws_rebalanced_total") == 0
        assert await open_sockets(gateway) == 12
    await clients.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_gateway_shutting_down_withdraws_its_count_at_once(own_prefix, resources):
    _prefix, cache = own_prefix
    hub = Hub(SimpleNamespace(cache=cache, settings=resources.settings))
    await activity.report_gateway(cache, "peer", 40, 40, 60)
    await hub.report_sockets()
    assert {e["gateway"] for e in await activity.gateway_sockets(cache)} == {"peer",
                                                                          hub.gateway_id}
    await hub.withdraw()  # Gateway.shutdown, right after the 1001 closes
    await hub.report_sockets()  # a late refresh (the presence loop) does not bring it back
    assert [e["gateway"] for e in await activity.gateway_sockets(cache)] == ["peer"]
    # Its rebalancer is stopped before that, and one never started does nothing either.
    rebalancer = Rebalancer(hub)
    await rebalancer.stop()
    assert await rebalancer.tick() == 0  # no sockets here, and alone as far as it counts
