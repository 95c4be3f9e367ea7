"""A mixed-workload load test (issue 15 §2): a realistic day compressed into a few minutes.

    python bench/mixed_load.py --smoke                    (~200 users, 1 minute; writes to a
                                                           temporary directory it prints)
    python bench/mixed_load.py --users 2000 --minutes 4   (writes bench/results/mixed_load.*)
    python bench/mixed_load.py                            (10,000 users, 15 minutes)

The deployment is supervisor/supervisord.conf, unchanged, run from a scratch root (as
tests/test_supervisor.py does): two gateway processes, the worker group, beat and Flower, on
the local MariaDB (database `pawhome_bench_mixed`) and Redis (prefix `pawhome_bench_mx:`,
queues `bench_mx.*`, deleted at the end), payments through the fake WeChat Pay the tests use
(tests/fakes/wechatpay.py, served from a thread of this process). Every user holds one
WebSocket (bench/ws_load.py's lean socket), half of them on each gateway. An open-loop
dispatcher in this process plays the day's traffic curve (a night trough, a morning and an
evening peak) over the run: reading the hot feed, posts and product pages, direct messages
between users on different gateways, orders placed and paid (prepay from the fake, then
WeChat's signed notify POSTed to a gateway), booking slots (slots, hold, confirm), virtual pet
care, bursts of likes on one hot post, and reconnects; halfway through,
`supervisorctl restart gateway:gateway-1`. Clients reconnect and resume from the last event
they processed, retry a 503 with backoff and fail over to the other gateway when theirs
refuses connections, as a client behind nginx would; a socket a gateway hands back with 1012
(gateway/rebalance.py, once gateway-1 is back) reconnects to the gateway holding fewer of the
run's sockets, as nginx's least_conn would, and those closes are counted apart. The results: per operation
p50/p95/p99, refusals and errors; socket events delivered vs expected (every DM, order
payment and booking event each user should get, and the per-user stream's ids checked for
gaps and repeats); CPU and memory per process (psutil); queue lengths; plots (matplotlib).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_booking as bk  # noqa: E402 - booking set-up through the API, pets
import bench_community as cm  # noqa: E402 - posts with likes and the hot ranking
import bench_gateway as gw  # noqa: E402 - health wait, results
import bench_mall as bm  # noqa: E402 - users, catalogue, hot SKUs, tokens, payment checks
import bench_realtime as rt  # noqa: E402 - database, Redis clean-up
import bench_virtualpet as vp  # noqa: E402 - virtual pets with food
import request_load  # noqa: E402 - request encoding
import ws_load  # noqa: E402 - the lean WebSocket client, percentiles, fd limit

ROOT, RESULTS = gw.ROOT, gw.RESULTS
sys.path.insert(0, str(ROOT))

from gateway.rebalance import CLOSE_REBALANCE as REBALANCE_CODE  # noqa: E402
from tests import test_supervisor as supervised  # noqa: E402 - scratch root, free ports

DB_NAME = "pawhome_bench_mixed"
PREFIX = "pawhome_bench_mx:"
QUEUE_PREFIX = "bench_mx."
USER_PREFIX = "mixbench-u-"
NOTIFY = "/v1/payments/wechat/notify"
BIN = ROOT / ".venv" / "bin"
now = time.perf_counter


def gateway_name(index: int) -> str:
    """gateway-<n>, as supervisor names the n-th gateway process (and `processes` finds it)."""
    return f"gateway-{index}"


# The actions of the day and their weights (a user's choice when the dispatcher picks one).
ACTIONS = {"feed": 26, "products": 18, "dm": 20, "vpet": 10, "booking": 5, "order": 5,
           "reconnect": 4}
# Reads answered from the caches (issue 15 aim: p95 < 200 ms).
CACHED_READS = ("feed.hot", "products.list", "product.detail", "booking.slots", "vpet.detail")
# Day hours of the like bursts on the hot post (lunch, evening).
BURSTS = (12.4, 21.0)
# Cooldowns of virtual pet care, in seconds of the real day, compressed with it.
COOLDOWNS = {"FEEDING": 1800, "PETTING": 60, "PLAYING": 300, "CLEANING": 1800,
             "TRAINING": 600}


def activity(hour: float) -> float:
    """Relative traffic at a time of day (1.0 at the evening peak): a night trough, a
    morning peak around 08:30, a lunch bump and the evening peak around 21:00."""
    def bump(at: float, width: float) -> float:
        return math.exp(-((hour - at) / width) ** 2)
    raw = 0.06 + 0.55 * bump(8.5, 1.4) + 0.35 * bump(12.5, 1.2) + 1.0 * bump(21.0, 2.0) \
        + 0.12 * bump(16.0, 3.0)
    return min(1.0, raw / 1.02)


# -- the data ------------------------------------------------------------------------------------
async def seed_population(settings, count: int, buyers: int) -> list[int]:
    """`count` users (inserted once, reused) and an address for each of the first `buyers`."""
    from sqlalchemy import select

    from models.mall import Address
    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.session() as session, session.begin():
            users = await bm.users(session, USER_PREFIX, count, "user")
            have = set((await session.execute(select(Address.user_id).where(
                Address.user_id.in_(users[:buyers]), Address.deleted_at.is_(None)))).scalars())
            session.add_all([Address(user_id=u, contact_name="李四", phone="13912345678",
                                     province="广东省", city="深圳市", district="福田区",
                                     detail=f"福华路 {n} 号", is_default=True)
                             for n, u in enumerate(users[:buyers]) if u not in have])
        return users
    finally:
        await db.close()


async def ids(settings, sql: str) -> list:
    from sqlalchemy import text

    from pawhome.platform.db import Database

    db = Database(settings)
    try:
        async with db.engine.connect() as conn:
            return [tuple(r) if len(r) > 1 else r[0] for r in (await conn.execute(text(sql))).all()]
    finally:
        await db.close()


def seed(settings, config: dict) -> dict:
    users = config["users"]
    asyncio.run(bm.empty_run_tables(settings, tuple(dict.fromkeys(
        bm.RUN_TABLES + bk.RUN_TABLES + ("messages", "conversation_members", "conversations")))))
    population = asyncio.run(seed_population(settings, users, config["buyers"]))
    catalogue = asyncio.run(bm.seed_catalogue(settings, config["products"]))
    skus = asyncio.run(bm.hot_skus(settings, catalogue["hot_shop"], 10, [10**7] * 10, "mixed"))
    posts = asyncio.run(cm.seed(settings, population[:200], config["posts"]))
    # The virtual pets' and the bookers' seeds name their users by a prefix: ours.
    vp.OWNER_PREFIX = USER_PREFIX
    pets = asyncio.run(vp.seed(settings, {"owners": config["pet_owners"], "pets_each": 1}))
    bk.USER_PREFIX = USER_PREFIX
    bookers = asyncio.run(bk.people(settings, config["bookers"]))
    addresses = asyncio.run(bm.buyer_addresses(settings, population[:config["buyers"]]))
    products = asyncio.run(ids(settings, "SELECT id FROM products WHERE status = 'on_sale' "
                                         "AND brand <> 'bench-hot' ORDER BY id LIMIT 300"))
    post_ids = asyncio.run(ids(settings, "SELECT id FROM posts WHERE location_name = "
                                         f"'{cm.SEED_MARK}' AND deleted_at IS NULL "
                                         "ORDER BY like_count DESC LIMIT 300"))
    return {"users": population, "skus": skus, "posts": post_ids, "hot_post": post_ids[0],
            "products": products, "pets": {o: p[0] for o, p in pets["pets"].items()},
            "food": pets["food"], "bookers": bookers, "addresses": addresses,
            "seed": {"products": catalogue["products"], "posts": posts["seeded_total"]}}


# -- the deployment -------------------------------------------------------------------------------
class Deployment:
    """supervisor/supervisord.conf run from a scratch root, as tests/test_supervisor.py does."""

    def __init__(self, env: dict) -> None:
        self.scratch = supervised._scratch_root()
        self.conf = self.scratch / "supervisor" / "supervisord.conf"
        self.base_port = supervised._consecutive_free_ports(2)
        self.ports = [self.base_port, self.base_port + 1]
        self.env = {**env, "GATEWAY_BASE_PORT": str(self.base_port),
                    "FLOWER_PORT": str(gw.free_port()),
                    "BEAT_SCHEDULE_FILE": str(self.scratch / "var" / "celerybeat-schedule")}
        self.proc = subprocess.Popen([str(BIN / "supervisord"), "-n", "-c", str(self.conf)],
                                     env=self.env, cwd=self.scratch, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.conf), *args],
                              env=self.env, capture_output=True, text=True, timeout=120)

    def wait_running(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lines = self.ctl("status").stdout.strip().splitlines()
            if len(lines) == len(supervised.PROGRAMS) and all(" RUNNING " in line
                                                              for line in lines):
                try:
                    for port in self.ports:
                        gw.wait_healthy(port, 120)
                except RuntimeError as error:
                    raise RuntimeError(f"{error}\n{self.log_tails()}") from None
                return
            time.sleep(0.5)
        raise RuntimeError("supervisord programs not RUNNING:\n" + self.ctl("status").stdout
                           + self.log_tails())

    def log_tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_bytes()[-1500:].decode(errors='replace')}"
                         for log in sorted((self.scratch / "var" / "log").glob("gateway*.log")))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[0]}{path}"

    def log_summary(self) -> dict:
        """Lines per program log, and the WARNING/ERROR ones (a sample)."""
        out: dict = {"lines": {}, "problems": {}, "sample": []}
        for log in sorted((self.scratch / "var" / "log").glob("*.log")):
            lines = problems = 0
            with log.open("rb") as handle:
                for raw in handle:
                    lines += 1
                    if b'"level": "WARNING"' in raw or b'"level": "ERROR"' in raw or \
                            b'"levelname": "ERROR"' in raw or b"Traceback" in raw:
                        problems += 1
                        if len(out["sample"]) < 12:
                            out["sample"].append(f"{log.stem}: {raw[:300].decode(errors='replace')}")
            out["lines"][log.stem] = lines
            out["problems"][log.stem] = problems
        return out

    def stop(self) -> None:
        self.ctl("shutdown")
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in supervised._processes_under(str(self.scratch)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.scratch, ignore_errors=True)


PROGRAM_OF = {"--queues=default,notify": "workers-default", "--queues=media": "workers-media",
              "--queues=moderation,search": "workers-index",
              "--queues=payments": "workers-payments", "--queues=ai": "workers-ai",
              "--beat": "beat", "--flower": "flower"}


def processes(supervisord_pid: int) -> dict:
    """The deployment's processes by program name (each with its children), MariaDB, Redis
    and this load client."""
    import psutil

    found = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(supervisord_pid).children():
            try:
                argv = child.cmdline()
            except psutil.Error:
                continue
            for arg in argv:
                if arg.startswith("--port-offset="):
                    found[f"gateway-{arg.split('=')[1]}"] = child
                elif arg in PROGRAM_OF:
                    found[PROGRAM_OF[arg]] = child
    for name, pid in ws_load.store_pids().items():
        found[{"db": "mariadb (shared)", "redis": "redis (shared)"}[name]] = psutil.Process(pid)
    found["load client"] = psutil.Process(os.getpid())
    return found


async def until(check, seconds: float) -> bool:
    """Poll `check` every 0.2 s for at most `seconds`."""
    deadline = now() + seconds
    while now() < deadline:
        if check():
            return True
        await asyncio.sleep(0.2)
    return bool(check())


# -- the clients -----------------------------------------------------------------------------------
class Client:
    __slots__ = ("acks", "churn", "epoch", "home", "last_eid", "lost_at", "opening",
                 "reconnecting", "sock", "token", "uid", "up")

    def __init__(self, uid: int, token: str, home: int) -> None:
        self.uid, self.token, self.home = uid, token, home
        self.sock: LiveSock | None = None
        self.opening: LiveSock | None = None  # the socket being opened (replaying)
        self.epoch: str | None = None
        self.last_eid = 0
        self.up = asyncio.Event()
        self.acks: dict[str, asyncio.Future] = {}
        self.lost_at = 0.0
        self.churn = False
        self.reconnecting = False


class LiveSock(ws_load.Sock):
    """ws_load's socket, telling the run when it closes (to reconnect and resume)."""

    def __init__(self, client: Client, run: Run, port: int) -> None:
        super().__init__(client.uid, run.on_frame)
        self.client, self.run, self.port = client, run, port
        self.resume_sent: dict | None = None

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.run.socket_lost(self)


class Refused(Exception):
    pass


class Run:
    def __init__(self, args, config: dict, data: dict, tokens: dict, dep: Deployment, fake,
                 settings) -> None:
        self.args, self.config, self.data, self.dep = args, config, data, dep
        self.fake, self.settings = fake, settings
        self.ports = dep.ports
        self.clients = [Client(uid, tokens[uid], n % 2) for n, uid in enumerate(data["users"])]
        self.by_uid = {c.uid: c for c in self.clients}
        self.groups = [[c for c in self.clients if c.home == g] for g in (0, 1)]
        self.pet_owners = [self.by_uid[o] for o in data["pets"]]
        self.bookers = [self.by_uid[u] for u in data["bookers"]["users"]]
        self.buyers = [self.by_uid[u] for u in data["addresses"]]
        self.idle: dict[int, list] = {p: [] for p in self.ports}
        self.started = now()
        self.stopping = False
        self.tag = uuid.uuid4().hex[:8]
        self.seq = 0
        # measurements
        self.records: list[tuple[str, float, float, str]] = []  # op, t, seconds, outcome
        self.retries: collections.Counter = collections.Counter()
        self.dm_sent_at: dict[str, float] = {}
        self.dm_to: dict[str, int] = {}
        self.dm_expected: set[str] = set()
        self.dm_got: collections.Counter = collections.Counter()
        self.order_expected: dict[int, int] = {}
        self.order_notified_at: dict[int, float] = {}
        self.order_got: collections.Counter = collections.Counter()
        self.appt_expected: dict[int, int] = {}
        self.appt_booked_at: dict[int, float] = {}
        self.appt_got: collections.Counter = collections.Counter()
        self.delivery: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        self.stream_gaps = self.stream_repeats = self.epoch_changes = 0
        self.repeat_samples: list[dict] = []
        self.stale_frames: collections.Counter = collections.Counter()
        self.resyncs: collections.Counter = collections.Counter()
        self.events_by_type: collections.Counter = collections.Counter()
        self.frame_errors: collections.Counter = collections.Counter()
        self.closes: collections.Counter = collections.Counter()
        # The run's open sockets per gateway port (what nginx's least_conn counts), and the
        # sockets a gateway handed back with 1012 (gateway/rebalance.py): from, and where to.
        self.sockets_on: collections.Counter = collections.Counter()
        self.rebalanced_from: collections.Counter = collections.Counter()
        self.rebalanced_to: collections.Counter = collections.Counter()
        self.samples: list[dict] = []
        self.restart: dict = {}
        self.inflight = 0
        self.skipped = 0
        self.dispatched: collections.Counter = collections.Counter()
        self.liked: set[int] = set()
        self.tasks: set[asyncio.Task] = set()
        self.answers: dict[str, list[str]] = collections.defaultdict(list)

    def t(self) -> float:
        return now() - self.started

    def record(self, op: str, started: float, outcome: str) -> None:
        self.records.append((op, started - self.started, now() - started, outcome))

    # -- HTTP -----------------------------------------------------------------------------------
    async def _exchange(self, port: int, raw: bytes) -> tuple[int, bytes]:
        idle = self.idle[port]
        reused = bool(idle)
        reader, writer = idle.pop() if idle else await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 10)
        try:
            writer.write(raw)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            body = await asyncio.wait_for(reader.readexactly(length), 60)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            writer.close()
            raise ConnectionError(f"{'stale' if reused else 'fresh'}: {error!r}") from error
        if close:
            writer.close()
        else:
            idle.append((reader, writer))
        return int(head[9:12]), body

    async def http(self, op: str, client: Client | None, method: str, path: str,
                   body: dict | bytes | None = None, key: str | None = None,
                   headers: dict | None = None) -> tuple[int, dict | None]:
        """One request as a client behind nginx makes it: to its gateway, on a refused or
        broken connection to the other one; a 503 retried with backoff. The latency recorded
        is the whole of it."""
        started = now()
        head = dict(headers or {})
        if client is not None:
            head["Authorization"] = f"Bearer {client.token}"
        if key:
            head["Idempotency-Key"] = key
        if body is not None:
            head["Content-Type"] = "application/json"
        text = body.decode() if isinstance(body, bytes) else (
            json.dumps(body) if body is not None else "")
        raw = request_load.encode("127.0.0.1", {"method": method, "path": path,
                                                "headers": head, "body": text})
        home = client.home if client is not None else random.randrange(2)
        port, backoff = self.ports[home], 0.25
        for _attempt in range(8):
            try:
                status, answer = await self._exchange(port, raw)
            except ConnectionError as error:
                self.retries[f"{op}: {'stale connection' if 'stale' in str(error) else 'connect failed'}"] += 1
                if "stale" not in str(error):
                    port = self.ports[1 - self.ports.index(port)]
                    await asyncio.sleep(0.05)
                continue
            if status == 503 or (status == 409 and b'"code":40901' in answer[:40]):
                # Busy, or (409 40901) the same key's first attempt still pending: "retry
                # shortly" (docs/api.md).
                self.retries[f"{op}: {status}"] += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(4.0, backoff * 2)
                continue
            outcome = "ok" if status < 300 else (f"refused {status}" if status < 500
                                                 else f"error {status}")
            if status >= 300 and len(self.answers[op]) < 3:
                self.answers[op].append(f"{status} {answer[:300].decode(errors='replace')}")
            self.record(op, started, outcome)
            data = None
            if answer[:1] == b"{":
                data = json.loads(answer).get("data")
            return status, data
        self.record(op, started, "error gave up")
        return 0, None

    # -- sockets ----------------------------------------------------------------------------------
    async def connect(self, client: Client, resume: bool) -> None:
        """Open (or reopen) a client's socket: its gateway first, then the other; with
        `resume`, from the last stored event it processed. Closed with 1012 (a gateway handing
        sockets back), after a jitter of 0.1-1 s to the gateway holding fewer of the run's
        sockets, as nginx's least_conn would (docs/realtime.md, "Rebalancing")."""
        closed = client.sock.close_code if client.sock is not None else None
        delay = 0.0 if client.sock is None or closed in (1001, 1000) else 0.5
        order = [client.home, 1 - client.home]
        if closed == REBALANCE_CODE:
            await asyncio.sleep(random.uniform(0.1, 1.0))
            delay = 0.5
            order = sorted((0, 1), key=lambda g: self.sockets_on[self.ports[g]])
        attempt = 0
        while not self.stopping:
            port = self.ports[order[attempt % 2]]
            sock = LiveSock(client, self, port)
            client.opening = sock
            # On a reconnect, always the position held - (None, 0) too, for a user who had no
            # stream: the events stored while away are then replayed (wsclient does the same).
            position = {"epoch": client.epoch, "last_event_id": client.last_eid} \
                if resume else None
            sock.resume_sent = position
            try:
                answer = await sock.open(f"ws://127.0.0.1:{port}/v1/ws", client.token, False,
                                         timeout=20, resume=position)
            except Exception as error:  # refused, 503 at the upgrade, timeout
                sock.close()
                kind = "503" if "503" in str(error) else "connect failed"
                self.retries[f"ws.connect: {kind}"] += 1
                attempt += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(30.0, max(0.25, delay * 2))
                continue
            if answer and answer.get("type") == "resync":
                self.resyncs[answer.get("reason")] += 1
                client.epoch, client.last_eid = answer.get("epoch"), answer.get("last_event_id")
            if client.epoch is None and position is None and sock.hello and \
                    sock.hello.get("epoch"):
                client.epoch = sock.hello["epoch"]
                client.last_eid = sock.hello["last_event_id"]
            client.sock, client.opening = sock, None
            self.sockets_on[port] += 1
            if closed == REBALANCE_CODE:
                self.rebalanced_to[gateway_name(self.ports.index(port))] += 1
            client.up.set()
            return

    def socket_lost(self, sock: LiveSock) -> None:
        client = sock.client
        if sock is not client.sock or self.stopping:
            return
        self.sockets_on[sock.port] -= 1
        client.up.clear()
        self.closes[str(sock.close_code)] += 1
        if sock.close_code == REBALANCE_CODE:
            self.rebalanced_from[gateway_name(self.ports.index(sock.port))] += 1
        for future in client.acks.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))
        client.acks.clear()
        client.lost_at = now()
        self.spawn(self.reconnect(client))

    async def reconnect(self, client: Client) -> None:
        if client.reconnecting:
            return
        client.reconnecting = True
        try:
            started = client.lost_at
            rebalanced = client.sock is not None and client.sock.close_code == REBALANCE_CODE
            await self.connect(client, resume=True)
            if not self.stopping:
                self.record("ws.reconnect" if client.churn else
                            "ws.reconnect (rebalance)" if rebalanced else
                            "ws.reconnect (server closed)", started, "ok")
        finally:
            client.churn = False
            client.reconnecting = False

    def arrived(self, kind: str, key, got: collections.Counter, since: dict, t: float) -> None:
        """One expected-kind event received: counted, and its delivery time (from the send,
        the notify answered or the booking confirmed) kept the first time."""
        got[key] += 1
        if got[key] == 1 and key in since:
            self.delivery[kind].append((since[key] - self.started, t - since[key]))

    def on_frame(self, sock: ws_load.Sock, frame: dict) -> None:
        client = sock.client  # type: ignore[attr-defined]
        kind = frame.get("type")
        eid = frame.get("eid")
        if sock is not client.sock and sock is not client.opening:
            # A socket this client gave up on (a timed-out open) that still got a frame: a
            # real app has one socket, so it is not processed - only counted.
            self.stale_frames[kind] += 1
            return
        if eid is not None:
            self.events_by_type[kind] += 1
            epoch = frame.get("epoch")
            if client.epoch is None and sock.resume_sent is None and sock.hello and \
                    sock.hello.get("epoch") == epoch:
                # A first connect (no position sent): the stream's position is hello's.
                # After a resume from (None, 0) the replay starts at 1 instead.
                client.epoch, client.last_eid = epoch, sock.hello["last_event_id"]
            if epoch != client.epoch:
                if client.epoch is not None:
                    self.epoch_changes += 1
                client.epoch, client.last_eid = epoch, eid
            elif eid <= client.last_eid:
                self.stream_repeats += 1
                if len(self.repeat_samples) < 10:
                    self.repeat_samples.append({
                        "user": client.uid, "type": kind, "eid": eid,
                        "client_last_eid": client.last_eid, "t": round(self.t(), 2),
                        "socket": "opening (replay)" if sock is client.opening else "live",
                        "resume_sent": sock.resume_sent,
                        "hello": {k: (sock.hello or {}).get(k) for k in ("epoch",
                                                                         "last_event_id")},
                        "client_epoch_is_frame_epoch": client.epoch == epoch,
                        "gateway": sock.port, "seconds_since_lost": round(now() - client.lost_at, 2)
                        if client.lost_at else None})
            else:
                self.stream_gaps += eid - client.last_eid - 1
                client.last_eid = eid
            data = frame.get("data") or {}
            t = now()
            if kind == "chat.message" and data.get("sender_id") != client.uid:
                self.arrived("dm", data.get("client_msg_id"), self.dm_got, self.dm_sent_at, t)
            elif kind == "order.status" and data.get("role") == "buyer" and \
                    data.get("action") == "pay":
                self.arrived(kind, data["order_id"], self.order_got, self.order_notified_at, t)
            elif kind == "appointment.status" and data.get("role") == "user" and \
                    data.get("action") == "book":
                self.arrived(kind, data["appointment_id"], self.appt_got, self.appt_booked_at,
                             t)
        elif kind == "chat.ack":
            future = client.acks.pop(frame.get("client_msg_id"), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "error":
            self.frame_errors[str(frame.get("code"))] += 1
            future = client.acks.pop(frame.get("ref"), None)
            if future is not None and not future.done():
                future.set_exception(Refused(str(frame.get("code"))))
        elif kind == "resync":
            self.resyncs[frame.get("reason")] += 1
            client.epoch, client.last_eid = frame.get("epoch"), frame.get("last_event_id")

    # -- actions ----------------------------------------------------------------------------------
    async def feed(self, client: Client) -> None:
        status, _ = await self.http("feed.hot", client, "GET", "/v1/posts?sort=hot")
        if status == 200 and random.random() < 0.5:
            await self.http("post.detail", client, "GET",
                            f"/v1/posts/{random.choice(self.data['posts'])}")

    async def products(self, client: Client) -> None:
        await self.http("products.list", client, "GET", "/v1/products")
        if random.random() < 0.6:
            await self.http("product.detail", client, "GET",
                            f"/v1/products/{random.choice(self.data['products'])}")

    async def dm(self, sender: Client) -> None:
        recipient = random.choice(self.groups[1 - sender.home])
        self.seq += 1
        cmid = f"{self.tag}-{self.seq}"
        frame = {"type": "chat.send", "ref": cmid, "to_user_id": recipient.uid,
                 "client_msg_id": cmid, "kind": "text", "text": "今天遛狗了吗?"}
        started = now()
        self.dm_sent_at[cmid] = started
        self.dm_to[cmid] = recipient.uid
        for attempt in range(5):
            try:
                await asyncio.wait_for(sender.up.wait(), 30)
            except TimeoutError:
                break
            future = asyncio.get_running_loop().create_future()
            sender.acks[cmid] = future
            sender.sock.send(frame)  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(asyncio.shield(future), 15)
            except Refused as refused:
                if refused.args[0] in ("42900", "50301", "50302"):
                    # The frame rate limit, or the database / Redis busy (the socket's 503):
                    # back off and resend, as after an HTTP 503.
                    self.retries[f"dm.send: {refused.args[0]}"] += 1
                    await asyncio.sleep(0.5 * 2 ** attempt * random.uniform(0.5, 1.5))
                    continue
                self.record("dm.send", started, f"refused {refused.args[0]}")
                return
            except (ConnectionError, TimeoutError):
                # No ack (the socket closed, or none came): resend the same client_msg_id
                # once connected again (the server stores it once).
                self.retries["dm.send: resent"] += 1
                sender.acks.pop(cmid, None)
                continue
            self.dm_expected.add(cmid)
            self.record("dm.send", started, "ok")
            return
        self.record("dm.send", started, "error no ack")

    async def order(self, buyer: Client) -> None:
        status, order = await self.http(
            "order.place", buyer, "POST", "/v1/orders",
            {"items": [{"sku_id": random.choice(self.data["skus"]), "quantity": 1}],
             "address_id": self.data["addresses"][buyer.uid]}, key=uuid.uuid4().hex)
        if status != 201 or not order:
            return
        order = order["orders"][0]  # one shop's SKU: one order
        status, _ = await self.http("order.pay", buyer, "POST", f"/v1/orders/{order['id']}/pay")
        if status != 200:
            return
        await asyncio.sleep(random.uniform(0.5, 2.0))  # the buyer confirms in WeChat
        self.fake.state.pay(order["order_no"])
        headers, body = self.fake.state.payment_notification(order["order_no"])
        # WeChat Pay retries a notify that did not get a 2xx.
        status, _ = await self.http("pay.notify", None, "POST", NOTIFY, body, headers={
            **headers, "User-Agent": "Mozilla/4.0"})
        if 200 <= status < 300:
            self.order_expected[order["id"]] = buyer.uid
            self.order_notified_at[order["id"]] = now()

    async def booking(self, client: Client) -> None:
        service = self.data["booking"]["service"]["id"]
        day = dt.date.today() + dt.timedelta(days=random.randint(1, 60))
        status, slots = await self.http("booking.slots", client, "GET",
                                        f"/v1/services/{service}/slots?date={day.isoformat()}")
        if status != 200 or not slots:
            return
        choices = [(s["staff_id"], start) for d in slots["days"] for s in d["staff"]
                   for start in s["starts"]]
        if not choices:
            return
        staff_id, start = random.choice(choices)
        status, hold = await self.http("booking.hold", client, "POST", "/v1/appointments/holds", {
            "service_id": service, "pet_id": self.data["bookers"]["pets"][client.uid],
            "staff_id": staff_id, "start": start})
        if status != 201 or not hold:
            return
        status, appointment = await self.http("booking.confirm", client, "POST",
                                              "/v1/appointments", {"hold_id": hold["id"]},
                                              key=uuid.uuid4().hex)
        if status == 201 and appointment:
            self.appt_expected[appointment["id"]] = client.uid
            self.appt_booked_at[appointment["id"]] = now()

    async def vpet(self, owner: Client) -> None:
        pet = self.data["pets"][owner.uid]
        status, _ = await self.http("vpet.detail", owner, "GET", f"/v1/virtual-pets/{pet}")
        if status != 200:
            return
        kind = random.choice(("petting", "cleaning", "training", "feeding"))
        body = {"type": kind, **({"item_id": self.data["food"]} if kind == "feeding" else {})}
        await self.http("vpet.interact", owner, "POST", f"/v1/virtual-pets/{pet}/interactions",
                        body, key=uuid.uuid4().hex)

    async def like(self, client: Client) -> None:
        post = self.data["hot_post"]
        if client.uid in self.liked:
            self.liked.discard(client.uid)
            await self.http("post.unlike", client, "DELETE", f"/v1/posts/{post}/like")
        else:
            self.liked.add(client.uid)
            await self.http("post.like", client, "POST", f"/v1/posts/{post}/like")

    async def churn(self, client: Client) -> None:
        """A phone losing its network: the socket goes, the app reconnects and resumes."""
        if client.up.is_set() and client.sock is not None:
            client.churn = True
            client.sock.close()

    # -- the day ----------------------------------------------------------------------------------
    def spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def act(self, name: str) -> None:
        self.inflight += 1
        try:
            if name == "vpet":
                await self.vpet(random.choice(self.pet_owners))
            elif name == "booking":
                await self.booking(random.choice(self.bookers))
            elif name == "order":
                await self.order(random.choice(self.buyers))
            else:
                await getattr(self, {"reconnect": "churn"}.get(name, name))(
                    random.choice(self.clients))
        except Exception as error:  # counted, the day goes on
            self.record(name, now(), f"error {type(error).__name__}")
        finally:
            self.inflight -= 1

    def hour(self) -> float:
        return 24 * self.t() / self.config["seconds"]

    async def dispatch(self) -> None:
        names, weights = list(ACTIONS), list(ACTIONS.values())
        due, last = 0.0, now()
        bursts = list(BURSTS)
        while self.t() < self.config["seconds"]:
            await asyncio.sleep(0.02)
            t = now()
            due += self.config["peak_rate"] * activity(self.hour()) * (t - last)
            last = t
            while due >= 1:
                due -= 1
                if self.inflight >= self.config["max_inflight"]:
                    self.skipped += 1
                    continue
                name = random.choices(names, weights)[0]
                self.dispatched[name] += 1
                self.spawn(self.act(name))
            if bursts and self.hour() >= bursts[0]:
                bursts.pop(0)
                self.spawn(self.burst())

    async def burst(self) -> None:
        """Many users like (or unlike) the hot post within two seconds."""
        users = random.sample(self.clients, min(len(self.clients), self.config["burst"]))
        self.dispatched["like burst"] += 1
        for client in users:
            self.spawn(self.like(client))
            await asyncio.sleep(2.0 / len(users))

    async def restart_gateway(self) -> None:
        await asyncio.sleep(self.config["seconds"] * self.config["restart_at"])
        self.restart["requested_at"] = round(self.t(), 2)
        self.restart["uptime"] = os.getloadavg()
        result = await asyncio.to_thread(self.dep.ctl, "restart", "gateway:gateway-1")
        self.restart["restarted_at"] = round(self.t(), 2)
        self.restart["output"] = (result.stdout + result.stderr).strip()
        port = self.ports[1]
        while True:
            try:
                status, _ = await self._exchange(port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if status == 200:
                    break
            except ConnectionError:
                pass
            await asyncio.sleep(0.2)
        self.restart["ready_at"] = round(self.t(), 2)

    async def sample(self) -> None:
        import psutil
        import redis.asyncio as aioredis

        from workers.celery_app import QUEUE_NAMES

        client = aioredis.Redis.from_url(gw.REDIS)
        queue_keys = {q: f"{PREFIX}celery:{QUEUE_PREFIX}{q}" for q in QUEUE_NAMES}
        previous: dict[tuple[str, int], float] = {}
        last = now()
        while not self.stopping:
            t = now()
            elapsed, last = t - last, t
            procs = {}
            for name, proc in processes(self.dep.proc.pid).items():
                try:
                    family = [proc] if name == "load client" else \
                        [proc, *proc.children(recursive=True)]
                    cpu = rss = 0.0
                    for member in family:
                        with contextlib.suppress(psutil.Error):
                            times = member.cpu_times()
                            cpu += times.user + times.system
                            rss += member.memory_info().rss
                except psutil.Error:
                    continue
                before = previous.get((name, proc.pid))
                previous[(name, proc.pid)] = cpu
                procs[name] = {"pid": proc.pid, "rss_mb": round(rss / 2**20, 1),
                               "cpu_percent": None if before is None else
                               round(100 * (cpu - before) / max(elapsed, 1e-3), 1)}
            pipe = client.pipeline(transaction=False)
            for key in queue_keys.values():
                pipe.llen(key)
            pipe.hlen(f"{PREFIX}celery:unacked")
            lengths = await pipe.execute()
            queues = dict(zip(queue_keys, lengths[:-1], strict=True))
            queues["unacked"] = lengths[-1]
            queues["outbox due"] = await asyncio.to_thread(bm.outbox_due, self.settings)
            self.samples.append({"t": round(self.t(), 2), "processes": procs, "queues": queues,
                                 "connected": sum(1 for c in self.clients if c.up.is_set()),
                                 "sockets": {gateway_name(g): self.sockets_on[p]
                                             for g, p in enumerate(self.ports)},
                                 "inflight": self.inflight,
                                 "loadavg": os.getloadavg()})
            await asyncio.sleep(self.config["sample_seconds"])
        await client.aclose()

    # -- the whole run ----------------------------------------------------------------------------
    async def connect_all(self) -> float:
        started = now()
        queue = iter(self.clients)

        async def worker() -> None:
            for client in queue:
                await self.connect(client, resume=False)

        await asyncio.gather(*(worker() for _ in range(64)))
        return now() - started

    def delivered(self) -> bool:
        return all(self.dm_got[c] for c in self.dm_expected) and \
            all(self.order_got[o] for o in self.order_expected) and \
            all(self.appt_got[a] for a in self.appt_expected)

    async def main(self) -> dict:
        connect_seconds = await self.connect_all()
        print(f"  {len(self.clients)} sockets connected in {connect_seconds:.1f} s", flush=True)
        self.started = now()
        sampler = asyncio.get_running_loop().create_task(self.sample())
        restarter = asyncio.get_running_loop().create_task(self.restart_gateway())
        progress = asyncio.get_running_loop().create_task(self.progress())
        await self.dispatch()
        load_ended = self.t()
        # Let the last actions finish, then the events still on their way.
        await until(lambda: not self.inflight, 90)
        await until(self.delivered, self.config["drain_seconds"])
        drained = self.t()
        await restarter
        self.stopping = True
        progress.cancel()
        await sampler
        for client in self.clients:
            if client.sock is not None:
                client.sock.close()
        await asyncio.sleep(0.5)
        return {"connect_seconds": round(connect_seconds, 1), "load_ended_at": round(load_ended, 1),
                "drained_at": round(drained, 1), "inflight_left": self.inflight}

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(15)
            s = self.samples[-1] if self.samples else {}
            print(f"  t={self.t():5.0f}s hour {self.hour():4.1f} ops {len(self.records)} "
                  f"inflight {self.inflight} connected {s.get('connected')} "
                  f"queues {s.get('queues')} load {os.getloadavg()[0]:.2f}", flush=True)


# -- figures ----------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    value = ws_load.percentile(values, q)
    return None if value is None else round(value * 1000, 1)


def op_table(run: Run) -> dict:
    by_op: dict[str, list] = collections.defaultdict(list)
    for op, _t, seconds, outcome in run.records:
        by_op[op].append((seconds, outcome))
    out = {}
    for op, rows in sorted(by_op.items()):
        ok = [s for s, o in rows if o == "ok"]
        answered = [s for s, o in rows if not o.startswith("error")]
        outcomes = collections.Counter(o for _, o in rows if o != "ok")
        out[op] = {"count": len(rows), "ok": len(ok), "p50_ms": pct(answered, 50),
                   "p95_ms": pct(answered, 95), "p99_ms": pct(answered, 99),
                   "max_ms": pct(answered, 100),
                   "refused": sum(n for o, n in outcomes.items() if o.startswith("refused")),
                   "errors": sum(n for o, n in outcomes.items() if o.startswith("error")),
                   "outcomes": dict(outcomes), "cached_read": op in CACHED_READS}
    return out


def events_table(run: Run) -> dict:
    def summary(expected: dict | set, got: collections.Counter, delivery: str) -> dict:
        keys = list(expected)
        lost = [k for k in keys if not got[k]]
        duplicated = [k for k in keys if got[k] > 1]
        unexpected = [k for k in got if k not in expected]
        latencies = [s for _, s in run.delivery[delivery]]
        return {"expected": len(keys), "delivered": len(keys) - len(lost), "lost": len(lost),
                "duplicated": len(duplicated), "unexpected": len(unexpected),
                "lost_sample": [str(k) for k in lost[:5]],
                "duplicated_sample": [str(k) for k in duplicated[:5]],
                "delivery_p50_ms": pct(latencies, 50), "delivery_p95_ms": pct(latencies, 95),
                "delivery_p99_ms": pct(latencies, 99), "delivery_max_ms": pct(latencies, 100)}

    return {"dm": summary(run.dm_expected, run.dm_got, "dm"),
            "order.status": summary(run.order_expected, run.order_got, "order.status"),
            "appointment.status": summary(run.appt_expected, run.appt_got,
                                          "appointment.status"),
            "stream": {"gaps": run.stream_gaps, "repeats": run.stream_repeats,
                       "repeat_samples": run.repeat_samples,
                       "frames_on_abandoned_sockets": dict(run.stale_frames),
                       "epoch_changes": run.epoch_changes, "resyncs": dict(run.resyncs),
                       "stored_events_by_type": dict(run.events_by_type)}}


def process_table(samples: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for sample in samples:
        for name, p in sample["processes"].items():
            row = out.setdefault(name, {"cpu": [], "rss": [], "pids": set()})
            if p["cpu_percent"] is not None:
                row["cpu"].append(p["cpu_percent"])
            row["rss"].append(p["rss_mb"])
            row["pids"].add(p["pid"])
    return {name: {"cpu_mean_percent": round(sum(r["cpu"]) / max(1, len(r["cpu"])), 1),
                   "cpu_max_percent": max(r["cpu"], default=None),
                   "rss_max_mb": max(r["rss"]), "rss_last_mb": r["rss"][-1],
                   "pids": sorted(r["pids"])} for name, r in out.items()}


def plots(run: Run, directory: Path, name: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=plt.cm.tab20.colors)
    written = []
    restart = run.restart

    def mark(ax) -> None:
        if "requested_at" in restart:
            ax.axvspan(restart["requested_at"], restart.get("ready_at", restart["requested_at"]),
                       color="red", alpha=0.15, label="gateway-1 restart")

    def save(fig, suffix: str) -> None:
        path = directory / f"{name}_{suffix}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)

    bucket = max(5.0, run.config["seconds"] / 60)
    ops = sorted({r[0] for r in run.records})
    fig, ax = plt.subplots(figsize=(11, 5.5))
    for op in ops:
        buckets: dict[int, list[float]] = collections.defaultdict(list)
        for o, t, s, outcome in run.records:
            if o == op and not outcome.startswith("error"):
                buckets[int(t // bucket)].append(s)
        xs = sorted(buckets)
        ax.plot([(x + 0.5) * bucket for x in xs],
                [1000 * ws_load.percentile(buckets[x], 95) for x in xs],
                label=op, linewidth=1.6 if op in CACHED_READS else 0.9,
                linestyle="-" if op in CACHED_READS else "--")
    for kind, rows in run.delivery.items():
        buckets = collections.defaultdict(list)
        for t, s in rows:
            buckets[int(t // bucket)].append(s)
        xs = sorted(buckets)
        ax.plot([(x + 0.5) * bucket for x in xs],
                [1000 * ws_load.percentile(buckets[x], 95) for x in xs],
                label=f"{kind} delivery", linestyle=":", linewidth=1.6)
    mark(ax)
    ax.axhline(200, color="grey", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(f"seconds into the run ({run.config['seconds'] / 60:.0f} min = 24 h)")
    ax.set_ylabel(f"p95 latency by start time, per {bucket:.0f} s, ms (log)")
    ax.set_title("Latency over time per operation (solid: cached reads; grey line: 200 ms)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    save(fig, "latency")

    fig, ax = plt.subplots(figsize=(11, 4.5))
    buckets_all: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    for _o, t, _s, outcome in run.records:
        buckets_all[int(t // bucket)] += 1
        if outcome.startswith("error"):
            errors[int(t // bucket)] += 1
    xs = sorted(buckets_all)
    ax.plot([(x + 0.5) * bucket for x in xs], [buckets_all[x] / bucket for x in xs],
            label="operations / s (by the time they started)")
    ax.plot([(x + 0.5) * bucket for x in xs], [errors[x] / bucket for x in xs],
            label="of which errors / s", color="red")
    grid = [i * run.config["seconds"] / 200 for i in range(201)]
    ax.plot(grid, [run.config["peak_rate"] * activity(24 * g / run.config["seconds"])
                   for g in grid], label="target actions / s (the day's curve)", color="grey",
            linestyle="--")
    ax2 = ax.twinx()
    ax2.plot([s["t"] for s in run.samples], [s["connected"] for s in run.samples],
             color="green", alpha=0.6, label="sockets connected")
    ax2.set_ylabel("sockets connected")
    mark(ax)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("per second")
    ax.set_title("Throughput")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    save(fig, "throughput")

    fig, (cpu_ax, mem_ax) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    names = sorted({n for s in run.samples for n in s["processes"]})
    for n in names:
        ts = [s["t"] for s in run.samples if n in s["processes"]
              and s["processes"][n]["cpu_percent"] is not None]
        cpu_ax.plot(ts, [s["processes"][n]["cpu_percent"] for s in run.samples
                         if n in s["processes"] and s["processes"][n]["cpu_percent"] is not None],
                    label=n, linewidth=1)
        mem_ax.plot([s["t"] for s in run.samples if n in s["processes"]],
                    [s["processes"][n]["rss_mb"] for s in run.samples if n in s["processes"]],
                    label=n, linewidth=1)
    mark(cpu_ax)
    mark(mem_ax)
    cpu_ax.set_ylabel("CPU, % of one core")
    mem_ax.set_ylabel("RSS, MB (with children)")
    mem_ax.set_xlabel("seconds into the run")
    cpu_ax.set_title("CPU and memory per process")
    cpu_ax.legend(fontsize=7, ncol=4)
    save(fig, "processes")

    fig, ax = plt.subplots(figsize=(11, 4.5))
    for q in (run.samples[0]["queues"] if run.samples else {}):
        ax.plot([s["t"] for s in run.samples], [s["queues"][q] for s in run.samples], label=q)
    ax.plot([s["t"] for s in run.samples], [s["inflight"] for s in run.samples],
            label="load client: actions in flight", linestyle="--", color="grey")
    mark(ax)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("length")
    ax.set_title("Queue lengths (broker lists, unacked tasks, outbox rows due)")
    ax.legend(fontsize=8, ncol=3)
    save(fig, "queues")
    return written


def rebalance_line(rebalance: dict | None) -> str:
    """The report's sentence on sockets handed back with 1012 (gateway/rebalance.py)."""
    if not rebalance:
        return "Rebalancing closes (1012): not recorded in this run."
    return (f"Rebalancing closes (1012, a gateway above the mean handing sockets back, "
            f"counted apart from the other closes): {rebalance['closes']:,} "
            f"(from {rebalance['from'] or 'none'}; reconnected to the gateway with fewer of "
            f"the run's sockets, as least_conn would: {rebalance['to'] or 'none'}); the run's "
            f"sockets per gateway at the end: {rebalance['sockets_at_end']}.")


def markdown(r: dict) -> str:
    c = r["config"]
    lines = [
        "# Mixed-workload load test (issue 15 §2)", "",
        f"Run {r['when']}: {c['users']:,} users, each with a WebSocket, a day compressed into "
        f"{c['seconds'] / 60:g} minutes (1 minute = {24 * 60 / (c['seconds'] / 60):.0f} minutes "
        f"of the day), peak {c['peak_rate']:.0f} actions/s. Two gateway processes, the worker "
        "group, beat and Flower under supervisord (supervisor/supervisord.conf unchanged), "
        "local MariaDB and Redis, the fake WeChat Pay; `supervisorctl restart "
        f"gateway:gateway-1` at {r['restart'].get('requested_at')} s (ready again at "
        f"{r['restart'].get('ready_at')} s). Load client: bench/mixed_load.py, one asyncio "
        "process on the same machine.", "",
        f"Machine: {r['machine']['cpus']} CPUs shared with other sessions' work; load average "
        f"(`uptime`) at the start {r['machine']['loadavg_start']}, at the restart "
        f"{r['restart'].get('uptime')}, at the end {r['machine']['loadavg_end']}. "
        f"`uptime` before the run: `{r['machine']['uptime_before']}`.", "",
        "## Verdict against the aim", "",
    ]
    ops = r["operations"]
    cached = {op: ops[op]["p95_ms"] for op in CACHED_READS if op in ops}
    worst = max((v for v in cached.values() if v is not None), default=None)
    ev = r["events"]
    lost = sum(ev[k]["lost"] for k in ("dm", "order.status", "appointment.status"))
    dups = sum(ev[k]["duplicated"] for k in ("dm", "order.status", "appointment.status"))
    lines += [
        f"- Cached reads p95 < 200 ms: **{'met' if worst is not None and worst < 200 else 'NOT met'}**"
        f" (worst p95 {worst} ms: " + ", ".join(f"{k} {v}" for k, v in cached.items()) + ").",
        f"- Every socket event delivered once: **{'yes' if lost == 0 and dups == 0 else 'NO'}** "
        f"({lost} lost, {dups} duplicated of "
        f"{sum(ev[k]['expected'] for k in ('dm', 'order.status', 'appointment.status')):,} "
        f"expected; stream ids: {ev['stream']['gaps']} gaps, {ev['stream']['repeats']} "
        f"repeats, resyncs {ev['stream']['resyncs'] or 'none'}).", "",
        "## Operations", "",
        "Latency is what the user waited, retries included (a 503 retried with backoff, a "
        "refused connection retried on the other gateway, a 409 40901 - the key's first "
        "attempt still pending - retried like a 503 since the light run). *Refused* are 4xx "
        "answers (e.g. a "
        "slot taken by someone else, a pet care cooldown); *errors* are 5xx, timeouts and "
        "requests given up after 8 attempts.", "",
        *bk.table(("operation", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "refused",
                   "errors"),
                  [[f"**{op}**" if f["cached_read"] else op, f["count"], f["p50_ms"],
                    f["p95_ms"], f["p99_ms"], f["max_ms"], f["refused"], f["errors"]]
                   for op, f in ops.items()]),
    ]
    lines += ["", "Bold: reads answered from the caches. Refusals and errors by kind: "
              + "; ".join(f"{op}: {f['outcomes']}" for op, f in ops.items() if f["outcomes"])
              + ".", "",
              "A sample answer of each refused or failed kind: " + "; ".join(
                  f"{op}: `{a}`" for op, answers in r["refusal_samples"].items()
                  for a in answers[:1]) + ".", "",
              "Retries (counted, not errors): " + (", ".join(
                  f"{k} {v}" for k, v in sorted(r["retries"].items())) or "none") + ".", "",
              f"Actions dispatched: {r['dispatched']}; skipped because {c['max_inflight']} "
              f"were already in flight: {r['skipped']}.", "",
              "## Socket events", "",
              "Expected: every DM acked to its sender (the recipient must get its "
              "`chat.message`), every order whose payment notify was answered (the buyer's "
              "`order.status`, action pay), every confirmed booking (the user's "
              "`appointment.status`, action book). Counted per user across reconnects and the "
              "restart (clients resume from the last event id they processed).", "",
              *bk.table(("event", "expected", "delivered", "lost", "duplicated",
                         "delivery p50 ms", "p95 ms", "p99 ms", "max ms"),
                        [[kind, *(ev[kind][k] for k in (
                            "expected", "delivered", "lost", "duplicated", "delivery_p50_ms",
                            "delivery_p95_ms", "delivery_p99_ms", "delivery_max_ms"))]
                         for kind in ("dm", "order.status", "appointment.status")])]
    lines += ["", f"Per-user stream check (every stored event's id against the last one the "
              f"client had): {ev['stream']['gaps']} ids skipped, {ev['stream']['repeats']} "
              f"repeated, {ev['stream']['epoch_changes']} epoch changes; frames on sockets "
              f"the client had given up on (timed-out opens, not processed): "
              f"{ev['stream']['frames_on_abandoned_sockets'] or 'none'}. Stored events "
              f"received by type: {ev['stream']['stored_events_by_type']}. Socket closes seen "
              f"by clients (code: count): {r['closes']}. Error frames: {r['frame_errors']}.",
              "", rebalance_line(r.get("rebalance")),
              "", *([f"Repeated stream ids (samples): {ev['stream']['repeat_samples']}.", ""]
                    if ev["stream"]["repeat_samples"] else []),
              f"Payments in the database: {r['paid_check']}.", "",
              "## Processes", "",
              "CPU in % of one core (with children: a Celery worker's pool), sampled every "
              f"{c['sample_seconds']} s with psutil. MariaDB and Redis serve the other sessions "
              "on this machine too.", "",
              *bk.table(("process", "CPU mean %", "CPU max %", "RSS max MB", "RSS at end MB",
                         "pids"),
                        [[name, p["cpu_mean_percent"], p["cpu_max_percent"], p["rss_max_mb"],
                          p["rss_last_mb"], p["pids"]] for name, p in r["processes"].items()])]
    q = r["queue_max"]
    lines += ["", "## Queues", "", "Longest seen: " + ", ".join(f"{k} {v}" for k, v in q.items())
              + ".", "", "## Logs", "",
              f"Lines per program: {r['logs']['lines']}; WARNING/ERROR lines: "
              f"{r['logs']['problems']}.", ""]
    if r["logs"]["sample"]:
        lines += ["```", *r["logs"]["sample"], "```", ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in r["plots"]] + [""]
    lines += ["## Notes", "", *[f"- {n}" for n in r["notes"]], ""]
    return "\n".join(lines)


NOTES = [
    "All load comes from 127.0.0.1, so the gateways run with RATE_LIMIT_SCALE=1000: every "
    "per-IP rule would otherwise refuse the whole population within seconds (a real day has "
    "thousands of addresses). Per-user limits are lifted by the same factor.",
    "The day is compressed, so virtual pet care cooldowns are compressed with it "
    "(VPET_COOLDOWN_*_SECONDS divided by the compression factor).",
    "The load client, the fake WeChat Pay (a thread of the load client), MariaDB, Redis, both "
    "gateways and the workers share the machine's CPUs with each other and with other "
    "sessions: a latency here includes waiting for a core.",
    "WeChat's payment notify is POSTed by the load client, as WeChat's server would, to one "
    "of the gateways (retried on 503 or a refused connection).",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--smoke", action="store_true",
                        help="~200 users, 1 minute, results to a temporary directory")
    parser.add_argument("--actions-per-user-minute", type=float, default=3.0,
                        help="per connected user at the evening peak (default 3)")
    parser.add_argument("--results", type=Path, default=None,
                        help="directory for mixed_load.json/.md and the plots "
                             "(default bench/results; with --smoke a temporary one)")
    parser.add_argument("--name", default="mixed_load",
                        help="file name of the results (NAME.json, NAME.md, NAME_*.png)")
    args = parser.parse_args()
    if args.smoke:
        args.users, args.minutes = 200, 1.0
    results = args.results or (Path(tempfile.mkdtemp(prefix="mixed-load-"))
                               if args.smoke else RESULTS)
    users = args.users
    seconds = args.minutes * 60
    compression = 24 * 3600 / seconds
    config = {"users": users, "seconds": seconds,
              "peak_rate": users * args.actions_per_user_minute / 60,
              "max_inflight": max(200, users // 5), "burst": max(20, min(400, users // 5)),
              "buyers": max(20, users // 10), "pet_owners": max(20, users // 10),
              "bookers": max(20, users // 20), "products": 600, "posts": 1000,
              "restart_at": 0.5, "drain_seconds": 30.0, "sample_seconds": 2.0}
    started = time.monotonic()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime: {uptime_before}", flush=True)
    ws_load.raise_fd_limit()
    from tests.fakes import wechat as fakewechat
    from tests.fakes import wechatpay as fakepay

    fake = fakepay.FakeWeChatPay()
    wechat = fakewechat.FakeWeChat()  # the access-token refresh and subscribe messages
    env = {**gw.ENV, "DATABASE_URL": f"{gw.MYSQL}{DB_NAME}?charset=utf8mb4",
           "REDIS_PREFIX": PREFIX, "TASK_QUEUE_PREFIX": QUEUE_PREFIX, "LOG_LEVEL": "INFO",
           "MEDIA_STORAGE": "local", "MEDIA_ROOT": tempfile.mkdtemp(prefix="mixed-media-"),
           "WORKER_CONCURRENCY": "1", "RATE_LIMIT_SCALE": "1000",
           "WS_MAX_CONNECTIONS": str(max(10_000, 2 * users)),
           "MODERATION_WECHAT_ENABLED": "0",
           "WECHAT_API_BASE": wechat.base_url, "WECHAT_APPID": fakewechat.APPID,
           "WECHAT_SECRET": fakewechat.SECRET, "PAYMENT_PROVIDER": "wechat", "WECHATPAY_API_BASE": fake.base_url,
           "WECHATPAY_MCHID": fakepay.MCHID, "WECHATPAY_APPID": fakepay.APPID,
           "WECHATPAY_PRIVATE_KEY": fakepay.MERCHANT_KEY_PEM,
           "WECHATPAY_CERT_SERIAL": fakepay.MERCHANT_SERIAL,
           "WECHATPAY_APIV3_KEY": fakepay.APIV3_KEY,
           **{f"VPET_COOLDOWN_{k}_SECONDS": str(max(1, round(v / compression)))
              for k, v in COOLDOWNS.items()}}
    settings = bm.settings_for(env)
    print(f"preparing database {DB_NAME} and Redis prefix {PREFIX}", flush=True)
    asyncio.run(rt.ensure_database(DB_NAME))
    from pawhome.platform import migrate as migrations

    migrations.upgrade(env["DATABASE_URL"])
    clean = [PREFIX + "*", QUEUE_PREFIX + "*", "_kombu.binding." + QUEUE_PREFIX + "*"]
    for pattern in clean:
        rt.clear_prefix(pattern)
    data = seed(settings, config)
    print(f"seeded {users} users, {data['seed']}", flush=True)
    dep = Deployment(env)
    try:
        dep.wait_running()
        print(f"supervisord up: gateways on {dep.ports}", flush=True)
        merchant = data["bookers"]["merchant"]
        tokens = bm.mint_tokens(env, [(u, "user") for u in data["users"]]
                                + [(merchant, "merchant")])
        data["booking"] = bk.set_up(dep, tokens[merchant], dt.date.today() + dt.timedelta(days=1),
                                    data["bookers"]["users"], tokens, data["bookers"]["pets"])
        run = Run(args, config, data, tokens, dep, fake, settings)
        loadavg_start = os.getloadavg()
        outcome = asyncio.run(run.main())
        loadavg_end = os.getloadavg()
        paid_orders = [{"id": o, "order_no": ""} for o in run.order_expected]
        paid = asyncio.run(bm.check_paid(settings, paid_orders)) if paid_orders else {}
        logs = dep.log_summary()
    finally:
        dep.stop()
        for pattern in clean:
            rt.clear_prefix(pattern)
    results.mkdir(parents=True, exist_ok=True)
    queue_max: dict[str, int] = {}
    for s in run.samples:
        for k, v in s["queues"].items():
            queue_max[k] = max(queue_max.get(k, 0), v)
    result = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "smoke": args.smoke, "duration_seconds": round(time.monotonic() - started, 1),
        "config": config, "actions": ACTIONS, "bursts_at_hours": BURSTS,
        "machine": {"cpus": os.cpu_count(), "uptime_before": uptime_before,
                    "loadavg_start": [round(v, 2) for v in loadavg_start],
                    "loadavg_end": [round(v, 2) for v in loadavg_end]},
        "run": outcome, "restart": {**run.restart, "uptime": [round(v, 2) for v in
                                                              run.restart.get("uptime", ())]},
        "operations": op_table(run), "events": events_table(run),
        "retries": dict(run.retries), "dispatched": dict(run.dispatched),
        "skipped": run.skipped, "closes": dict(run.closes),
        "rebalance": {"closes": sum(run.rebalanced_from.values()),
                      "from": dict(run.rebalanced_from), "to": dict(run.rebalanced_to),
                      "sockets_at_end": {gateway_name(g): run.sockets_on[p]
                                         for g, p in enumerate(run.ports)}},
        "frame_errors": dict(run.frame_errors), "refusal_samples": dict(run.answers),
        "paid_check": {k: v for k, v in paid.items() if k != "bad"} | (
            {"bad": paid["bad"]} if paid.get("bad") else {}),
        "processes": process_table(run.samples), "queue_max": queue_max, "logs": logs,
        "samples": run.samples, "notes": NOTES,
    }
    result["plots"] = plots(run, results, args.name)
    text = markdown(result)
    (results / f"{args.name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False,
                                                        default=str) + "\n")
    (results / f"{args.name}.md").write_text(text)
    print(text)
    print(f"done in {time.monotonic() - started:.0f} s; wrote {results}/{args.name}.json, .md "
          f"and {len(result['plots'])} plots", flush=True)


if __name__ == "__main__":
    main()
