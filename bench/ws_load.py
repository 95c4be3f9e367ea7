"""The load-client side of bench/bench_realtime.py: many WebSocket clients in one process.

    python bench/ws_load.py idle   SPEC.json     (hold N idle sockets, report server RSS)
    python bench/ws_load.py dm     SPEC.json     (step the direct-message rate)
    python bench/ws_load.py fanout SPEC.json     (one event to many sockets, repeated)

SPEC.json is written by bench_realtime.py (urls, tokens, rates, server pids); the result is
printed as one line `RESULT {...}`. Sockets are a minimal asyncio WebSocket client (`Sock`)
so that thousands fit on one core; they speak the same protocol as wsclient/ (hello, then
`resume` to go live). With `"bare": true` they speak bench/bare_ws_relay.py's
dialect instead (`?id=` instead of a token, `send` instead of `chat.send`).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

now = time.perf_counter
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- measurements of the server process ------------------------------------------------------
def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat: how loaded the whole machine
    was, the benchmark's own processes included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def store_counters(spec: dict) -> tuple[int, int] | None:
    """(MariaDB `Questions`, Redis total_commands_processed): server-wide counters, so the
    per-message figures also include whatever else ran meanwhile (approximate)."""
    stores = spec.get("stores")
    if not stores:
        return None
    import pymysql
    import redis

    db = pymysql.connect(host=stores["mysql_host"], port=stores["mysql_port"],
                         user=stores["mysql_user"], password=stores["mysql_password"] or "")
    try:
        with db.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            questions = int(cursor.fetchone()[1])
    finally:
        db.close()
    client = redis.Redis.from_url(stores["redis_url"])
    try:
        commands = int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()
    return questions, commands


def store_pids() -> dict[str, int]:
    """The local MariaDB and Redis server processes, by name (none when they run elsewhere):
    their CPU per message is part of what a message costs on this machine."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name in ("mariadbd", "mysqld"):
            found.setdefault("db", int(entry.name))
        elif name == "redis-server":
            found.setdefault("redis", int(entry.name))
    return found


def cpu_or_none(pid: int | None) -> float | None:
    try:
        return cpu_seconds(pid) if pid else None
    except OSError:
        return None


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- one lean socket -----------------------------------------------------------------------------
class Sock(asyncio.Protocol):
    """A minimal RFC 6455 client on an asyncio Protocol: frames are parsed in data_received
    and handed to `handler(sock, frame)`. A tornado or wsclient client costs tens of
    microseconds per frame in Python; this one a few, so one load core can read 5,000 frames
    of a fan-out (or thousands of messages a second) without becoming what is measured.
    Client frames use an all-zero masking key (valid framing, nothing to XOR)."""

    def __init__(self, uid: int, handler: Callable[[Sock, dict], None] | None) -> None:
        self.uid = uid
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.request = b""
        self.accept = ""
        self.fragments: list[bytes] = []
        self._waiting: asyncio.Future | None = None
        self._wait_type: tuple[str, ...] | None = None
        self.hello: dict | None = None
        self._upgrade: asyncio.Future | None = None
        self.closed = False
        self.close_code: int | None = None

    # asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, error: Exception | None) -> None:
        self.closed = True
        for future in (self._upgrade, self._waiting):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"closed {self.close_code} {error!r}"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[:end + 4]
            status = head.split(" ", 2)
            if len(status) < 2 or status[1] != "101" or self.accept not in head:
                if self._upgrade is not None and not self._upgrade.done():
                    self._upgrade.set_exception(ConnectionError(f"upgrade refused: {head[:80]}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            if self._upgrade is not None and not self._upgrade.done():
                self._upgrade.set_result(None)
        position, size = 0, len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2:position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2:position + 10], "big"), 10
            if size - position < header + length:
                break
            payload = bytes(buffer[position + header:position + header + length])
            position += header + length
            self._frame(first & 0x80, first & 0x0F, payload)
        if position:
            del buffer[:position]

    # frames -----------------------------------------------------------------------------------
    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == 0x1 or opcode == 0x0:
            if not fin:
                self.fragments.append(payload)
                return
            if self.fragments:
                payload = b"".join(self.fragments) + payload
                self.fragments = []
            self._message(payload)
        elif opcode == 0x9:  # ping: answer at once
            self._write(0xA, payload)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if not self.closed:
                self._write(0x8, payload[:2])
                self.transport.close()  # type: ignore[union-attr]

    def _message(self, payload: bytes) -> None:
        frame = orjson.loads(payload)
        if self._waiting is not None and frame.get("type") in (self._wait_type or ()):
            if not self._waiting.done():
                self._waiting.set_result(frame)
            return
        if self.handler is not None:
            self.handler(self, frame)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        self.transport.write(header + b"\x00\x00\x00\x00" + payload)

    # API --------------------------------------------------------------------------------------
    async def _expect(self, frame_type: str | tuple[str, ...], timeout: float) -> dict:
        self._wait_type = frame_type if isinstance(frame_type, tuple) else (frame_type,)
        self._waiting = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(self._waiting, timeout)
        finally:
            self._waiting = self._wait_type = None

    async def open(self, url: str, token: str | None, bare: bool, timeout: float = 30,
                   resume: dict | None = None) -> dict | None:
        """Connect, read `hello` (kept in self.hello) and, unless bare, `resume`: without
        `resume` fields "nothing to replay"; with {epoch, last_event_id} the stored events
        after that position are replayed (to the handler) first. Returns the answer,
        `resumed` or `resync` (None when bare)."""
        parts = urlsplit(url)
        key = base64.b64encode(os.urandom(16)).decode()
        self.accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        auth = "" if bare else f"Authorization: Bearer {token}\r\n"
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"{auth}\r\n").encode()
        loop = asyncio.get_running_loop()
        self._upgrade = loop.create_future()
        self._wait_type, self._waiting = ("hello",), loop.create_future()
        hello = self._waiting
        await asyncio.wait_for(loop.create_connection(lambda: self, parts.hostname, parts.port),
                               timeout)
        await asyncio.wait_for(self._upgrade, timeout)
        self.hello = await asyncio.wait_for(hello, timeout)
        self._waiting = self._wait_type = None
        if bare:
            return None
        # As wsclient does: without fields nothing to replay, go live (stored events flow
        # from here); with a position, the replay first.
        self.send({"type": "resume", **(resume or {})})
        return await self._expect(("resumed", "resync"), timeout)

    def send(self, frame: dict) -> None:
        self._write(0x1, orjson.dumps(frame))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._write(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


def socket_url(base: str, uid: int, bare: bool) -> str:
    return f"{base}?id={uid}" if bare else base


async def open_many(targets: list[tuple[str, int, str | None]], bare: bool,
                    handler: Callable[[Sock, dict], None] | None,
                    concurrency: int = 64) -> tuple[list[Sock], list[str]]:
    """Open one socket per (url, uid, token), `concurrency` handshakes at a time."""
    socks: list[Sock | None] = [None] * len(targets)
    failures: list[str] = []
    queue = iter(range(len(targets)))

    async def worker() -> None:
        for index in queue:
            url, uid, token = targets[index]
            sock = Sock(uid, handler)
            for attempt in range(3):
                try:
                    await sock.open(socket_url(url, uid, bare), token, bare)
                    socks[index] = sock
                    break
                except Exception as error:
                    if attempt == 2:
                        failures.append(repr(error)[:200])
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [s for s in socks if s is not None], failures


# -- idle connections --------------------------------------------------------------------------
async def run_idle(spec: dict) -> dict:
    pid, bare = spec["server_pid"], spec["bare"]
    await asyncio.sleep(1.0)  # let the server finish its start-up allocations
    before = rss_kb(pid)
    targets = [(spec["url"], uid, token) for uid, token in spec["users"]]
    started = now()
    socks, failures = await open_many(targets, bare, None, spec.get("concurrency", 64))
    connect_seconds = now() - started
    await asyncio.sleep(spec.get("settle_seconds", 3.0))
    after = rss_kb(pid)
    open_count = sum(1 for s in socks if not s.closed)
    result = {
        "connections": open_count,
        "failed": len(failures),
        "failures_sample": failures[:3],
        "connect_seconds": round(connect_seconds, 2),
        "connects_per_second": round(len(socks) / connect_seconds, 1),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_per_connection_kb": round((after - before) / max(1, open_count), 2),
    }
    for sock in socks:
        sock.close()
    await asyncio.sleep(0.5)
    return result


# -- direct messages ---------------------------------------------------------------------------
class DmRun:
    """Senders write at a controlled total rate (open loop: a late ack never delays the next
    send); recipients timestamp every chat.message by its client_msg_id."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.bare = spec["bare"]
        self.tag = spec["tag"]
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.duplicates = 0
        self.echoes = 0
        self.errors: list[dict] = []
        self.pings: dict[str, float] = {}
        self.rtts: list[float] = []
        self.seq = 0

    # frames ---------------------------------------------------------------------------------
    def on_recipient(self, sock: Sock, frame: dict) -> None:
        if frame.get("type") != "chat.message":
            if frame.get("type") == "error":
                self.errors.append(frame)
            return
        t = now()
        data = frame["data"]
        if data.get("sender_id") == sock.uid:
            self.echoes += 1
            return
        cmid = data["client_msg_id"]
        if cmid in self.received:
            self.duplicates += 1
        else:
            self.received[cmid] = t

    def on_sender(self, sock: Sock, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "chat.ack":
            self.acked.setdefault(frame["client_msg_id"], now())
        elif kind == "chat.message":
            self.echoes += 1  # the sender's own copy, for its other devices
        elif kind == "error":
            self.errors.append(frame)

    def on_probe(self, sock: Sock, frame: dict) -> None:
        if frame.get("type") == "pong":
            sent = self.pings.pop(frame.get("ref"), None)
            if sent is not None:
                self.rtts.append(now() - sent)

    # sending --------------------------------------------------------------------------------
    def send_one(self, sender: Sock, to: int) -> None:
        self.seq += 1
        cmid = f"{self.tag}-{self.seq}"
        if self.bare:
            frame = {"type": "send", "to": to, "ref": cmid, "client_msg_id": cmid,
                     "text": "bench message"}
        else:
            frame = {"type": "chat.send", "ref": cmid, "to_user_id": to, "client_msg_id": cmid,
                     "kind": "text", "text": "bench message"}
        self.sent[cmid] = now()
        sender.send(frame)

    async def probe(self, probes: list[Sock], stop: asyncio.Event) -> None:
        """Loop-lag probe: pings spread over the probe sockets (each under its frame limit);
        a stalled server event loop shows up as a long round trip."""
        interval = self.spec["probe_interval"]
        n = 0
        while not stop.is_set():
            sock = probes[n % len(probes)]
            n += 1
            ref = f"p{n}"
            self.pings[ref] = now()
            sock.send({"type": "ping", "ref": ref})
            await asyncio.sleep(interval)

    async def step(self, senders: list[Sock], recipients: list[int], rate: float,
                   seconds: float, pids: list[int], probes: list[Sock]) -> dict:
        total = int(rate * seconds)
        first = self.seq
        self.rtts.clear()
        self.pings.clear()
        errors_before = len(self.errors)
        duplicates_before = self.duplicates
        cpu_before = [cpu_seconds(p) for p in pids]
        stores = store_pids() if self.spec.get("stores") else {}
        stores_before = {k: cpu_or_none(v) for k, v in stores.items()}
        counters_before = store_counters(self.spec)
        busy_before = machine_busy()
        client_cpu_before = time.process_time()
        stop = asyncio.Event()
        prober = asyncio.get_running_loop().create_task(self.probe(probes, stop)) \
            if probes else None
        started = now()
        k = 0
        pairs = len(senders)
        while k < total:
            due = min(total, int((now() - started) * rate) + 1)
            while k < due:
                index = k % pairs
                self.send_one(senders[index], recipients[index])
                k += 1
            await asyncio.sleep(0.001)
        send_seconds = now() - started
        cmids = [f"{self.tag}-{i}" for i in range(first + 1, first + total + 1)]
        deadline = now() + self.spec["drain_seconds"]
        while now() < deadline:
            if all(c in self.received for c in cmids[-50:]) and \
                    sum(1 for c in cmids if c in self.received) == total and \
                    sum(1 for c in cmids if c in self.acked) == total:
                break
            await asyncio.sleep(0.05)
        elapsed = now() - started
        stop.set()
        if prober is not None:
            await prober
        cpu_after = [cpu_seconds(p) for p in pids]
        stores_after = {k: cpu_or_none(v) for k, v in stores.items()}

        def store_us(kind: str) -> float | None:
            before, after = stores_before.get(kind), stores_after.get(kind)
            if before is None or after is None:
                return None
            return round((after - before) / max(1, total) * 1e6, 1)
        counters_after = store_counters(self.spec)
        busy_after = machine_busy()
        client_cpu = time.process_time() - client_cpu_before
        delivery = [self.received[c] - self.sent[c] for c in cmids if c in self.received]
        acks = [self.acked[c] - self.sent[c] for c in cmids if c in self.acked]
        lost = total - len(delivery)
        duplicates = self.duplicates - duplicates_before
        errors = self.errors[errors_before:]
        p99 = percentile(delivery, 99)
        achieved = total / send_seconds
        server_cpu = sum(a - b for a, b in zip(cpu_after, cpu_before, strict=False))
        passed = (lost == 0 and duplicates == 0 and not errors and len(acks) == total
                  and p99 is not None and p99 < 0.100 and achieved >= 0.95 * rate)
        return {
            "rate": rate, "messages": total, "achieved_rate": round(achieved, 1),
            "delivered": len(delivery), "lost": lost, "duplicates": duplicates,
            "errors": len(errors), "error_sample": errors[:2], "acked": len(acks),
            "delivery_p50_ms": ms(percentile(delivery, 50)), "delivery_p99_ms": ms(p99),
            "delivery_max_ms": ms(max(delivery) if delivery else None),
            "ack_p50_ms": ms(percentile(acks, 50)), "ack_p99_ms": ms(percentile(acks, 99)),
            "probe_pings": len(self.rtts),
            "probe_rtt_p99_ms": ms(percentile(self.rtts, 99)),
            "probe_rtt_max_ms": ms(max(self.rtts) if self.rtts else None),
            "server_cpu_percent": round(100 * server_cpu / elapsed, 1),
            "server_cpu_us_per_message": round(server_cpu / max(1, total) * 1e6, 1),
            # The local MariaDB and Redis processes (they share the load client's core).
            "db_cpu_us_per_message": store_us("db"),
            "redis_cpu_us_per_message": store_us("redis"),
            "client_cpu_percent": round(100 * client_cpu / elapsed, 1),
            # Of all CPUs together (200 = both cores busy); the rest of the machine included.
            "machine_busy_percent": round(os.cpu_count() * 100 * (busy_after[0] - busy_before[0])
                                          / max(1, busy_after[1] - busy_before[1]), 1),
            "db_statements_per_message": None if counters_before is None else round(
                (counters_after[0] - counters_before[0]) / max(1, total), 1),
            "redis_commands_per_message": None if counters_before is None else round(
                (counters_after[1] - counters_before[1]) / max(1, total), 1),
            "passed": passed,
        }


def report_step(spec: dict, result: dict) -> None:
    rate = result["rate"]
    print(f"    {spec['label']:>18} {rate:>6} msg/s: "
          f"{'pass' if result['passed'] else 'FAIL'}  "
          f"delivery p50 {result['delivery_p50_ms']} p99 {result['delivery_p99_ms']} "
          f"max {result['delivery_max_ms']} ms, lost {result['lost']}, "
          f"ack p99 {result['ack_p99_ms']} ms, probe max {result['probe_rtt_max_ms']} ms, "
          f"server cpu {result['server_cpu_percent']}%, "
          f"machine {result['machine_busy_percent']}%, "
          f"sql/msg {result['db_statements_per_message']}, "
          f"db/redis cpu us/msg {result.get('db_cpu_us_per_message')}/"
          f"{result.get('redis_cpu_us_per_message')}", file=sys.stderr, flush=True)


async def run_dm(spec: dict) -> dict:
    run = DmRun(spec)
    bare = spec["bare"]
    pairs = spec["pairs"]
    sender_targets = [(spec["sender_url"], uid, tok) for uid, tok in spec["senders"]]
    recipient_targets = [(spec["recipient_url"], uid, tok) for uid, tok in spec["recipients"]]
    probe_targets = [(spec["sender_url"], uid, tok) for uid, tok in spec["probes"]]
    started = now()
    senders, failed_s = await open_many(sender_targets, bare, run.on_sender)
    recipients, failed_r = await open_many(recipient_targets, bare, run.on_recipient)
    probes, _failed_p = await open_many(probe_targets, bare, run.on_probe)
    if failed_s or failed_r or len(senders) != pairs or len(recipients) != pairs:
        return {"error": f"could not connect: {(failed_s + failed_r)[:3]}"}
    connect_seconds = now() - started
    recipient_ids = [uid for uid, _ in spec["recipients"]]
    pids = spec["server_pids"]
    # Warm-up, not measured: creates each pair's conversation and warms every code path.
    warm = await run.step(senders, recipient_ids, spec["warmup_rate"], spec["warmup_seconds"],
                          pids, probes)
    steps = []
    for rate in spec["rates"]:
        result = await run.step(senders, recipient_ids, rate, spec["step_seconds"], pids,
                                probes)
        if not result["passed"]:
            # The machine is shared: a failing step gets one more try before the case stops.
            result["retried"] = True
            steps.append({**result, "passed": False, "superseded": True})
            report_step(spec, result)
            result = await run.step(senders, recipient_ids, rate, spec["step_seconds"], pids,
                                    probes)
            result["retried"] = True
        steps.append(result)
        report_step(spec, result)
        if not result["passed"]:
            break
    passed = [s["rate"] for s in steps if s["passed"]]
    for sock in senders + recipients + probes:
        sock.close()
    await asyncio.sleep(0.3)
    return {"pairs": pairs, "connect_seconds": round(connect_seconds, 2),
            "warmup": {k: warm[k] for k in ("messages", "delivered", "lost", "errors",
                                            "error_sample")},
            "max_rate_passed": max(passed) if passed else 0,
            "first_failed_rate": next((s["rate"] for s in steps
                                       if not s["passed"] and not s.get("superseded")), None),
            "steps": steps}


# -- fan-out -----------------------------------------------------------------------------------
async def run_fanout(spec: dict) -> dict:
    bare = spec["bare"]
    users = spec["users"]
    devices = spec["devices"]
    total = len(users) * devices
    counts: dict[int, int] = {}
    first_at: dict[int, float] = {}
    done: dict[int, asyncio.Future] = {}

    def on_frame(sock: Sock, frame: dict) -> None:
        if frame.get("type") != "bench.fanout":
            return
        t = now()
        rep = frame["data"]["rep"]
        counts[rep] = counts.get(rep, 0) + 1
        first_at.setdefault(rep, t)
        if counts[rep] == total and rep in done and not done[rep].done():
            done[rep].set_result(t)

    targets = [(spec["url"], uid, tok) for uid, tok in users for _ in range(devices)]
    started = now()
    socks, failures = await open_many(targets, bare, on_frame, spec.get("concurrency", 64))
    connect_seconds = now() - started
    if failures:
        return {"error": f"could not connect {len(failures)}: {failures[:3]}"}
    publish: Callable[[int], Any]
    if bare:
        control, _ = await open_many([(spec["url"], 0, None)], True, None, 1)

        async def publish(rep: int) -> None:
            control[0].send({"type": "broadcast", "data": {"rep": rep}})
    else:
        from pawhome.platform import events
        from pawhome.platform.cache import Cache
        from settings import get_settings

        cache = Cache(get_settings())
        user_ids = [uid for uid, _ in users]

        async def publish(rep: int) -> None:
            # Every stored event of every user takes this path (pawhome/platform/events.py).
            await asyncio.gather(*(events.publish_to_user(cache, uid, "bench.fanout",
                                                          {"rep": rep}) for uid in user_ids))
    await asyncio.sleep(1.0)
    last, first, publish_times, incomplete = [], [], [], 0
    cpu_before = cpu_seconds(spec["server_pid"])
    for rep in range(spec["reps"]):
        loop = asyncio.get_running_loop()
        done[rep] = loop.create_future()
        t0 = now()
        await publish(rep)
        publish_times.append(now() - t0)
        try:
            t_last = await asyncio.wait_for(done[rep], spec["rep_timeout"])
            last.append(t_last - t0)
            first.append(first_at[rep] - t0)
        except TimeoutError:
            incomplete += 1
        await asyncio.sleep(spec["pause"])
    server_cpu = cpu_seconds(spec["server_pid"]) - cpu_before
    if not bare:
        await cache.close()
    for sock in socks:
        sock.close()
    await asyncio.sleep(0.5)
    return {
        "connections": len(socks), "users": len(users), "devices_per_user": devices,
        "connect_seconds": round(connect_seconds, 2), "reps": spec["reps"],
        "incomplete_reps": incomplete,
        "last_p50_ms": ms(percentile(last, 50)), "last_p99_ms": ms(percentile(last, 99)),
        "last_max_ms": ms(max(last) if last else None),
        "first_p50_ms": ms(percentile(first, 50)),
        "publish_p50_ms": ms(percentile(publish_times, 50)),
        "server_cpu_ms_per_event": round(server_cpu / spec["reps"] * 1000, 1),
    }


def main() -> None:
    mode, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text())
    raise_fd_limit()
    runner = {"idle": run_idle, "dm": run_dm, "fanout": run_fanout}[mode]
    result = asyncio.run(runner(spec))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
