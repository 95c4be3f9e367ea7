"""Redis Cluster check for docs/scaling.md: user streams and sharded pub/sub on a real cluster.

    python bench/bench_redis_cluster.py            (--quick: a smoke run that writes nothing)

Starts a Redis Cluster of its own (three masters on free ports, `redis-cli --cluster
create`) and a standalone redis-server beside it, and checks and measures what the design in
docs/scaling.md ("Past one Redis") relies on, with the project's own stream scripts
(pawhome/platform/streams.py):

1. **Slots.** With a hash tag per user (`{u:<id>}`) the user's stream keys (meta, log,
   dedup) and channel share one slot; with today's key names they do not, and the append
   script fails on the cluster with CROSSSLOT — the key change the move needs.
2. **Appends.** Events appended the way a cluster deployment would: one script per event on
   the node that owns its user (pipelined per node, one round trip per node per batch),
   and with ONE APPEND_MANY call per node (Redis 7's `allow-cross-slot-keys` script flag),
   beside today's one APPEND_MANY call on one Redis. Every event's id checked (1, 2, 3… per
   user), every stream read back.
3. **Sharded pub/sub.** Subscribers hold one connection per master and SSUBSCRIBE each
   user's channel on the master that owns it (as a gateway's hub would); the append script
   SPUBLISHes. Every event must arrive exactly once. The same load with classic PUBLISH
   (which a cluster broadcasts to every node over the cluster bus) shows what sharding saves:
   the cluster's CPU per event for each, from /proc.

Writes bench/results/redis_cluster.json and .md. Not part of `make test` (about a minute).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import redis.asyncio as aioredis
from redis.crc import key_slot

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_gateway as gw  # noqa: E402 - shared set-up helpers (ports, cores, results)
from bench_realtime import machine_busy_percent  # noqa: E402
from ws_load import cpu_seconds  # noqa: E402

from pawhome.platform.streams import APPEND_LUA, APPEND_MANY_LUA  # noqa: E402

FULL = {"masters": 3, "users": 2000, "events": 40000, "batch": 20}
QUICK = {"masters": 3, "users": 200, "events": 2000, "batch": 20}
RETENTION = {"maxlen": 1000, "ttl": 3600, "dedup_ttl": 3600, "max_age_ms": 3600_000}


# -- servers -----------------------------------------------------------------------------------
def free_cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too (a port from the kernel's
    ephemeral range may have no bus port at all)."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class Node:
    """One redis-server of our own (cluster-enabled or not) in a temp dir."""

    def __init__(self, cluster: bool) -> None:
        self.port = free_cluster_port()
        self.dir = tempfile.mkdtemp(prefix="pawhome-rc-")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "5000"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


async def wait_up(nodes: list[Node]) -> None:
    for node in nodes:
        client = aioredis.Redis(port=node.port)
        for _ in range(100):
            try:
                await client.ping()
                break
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.1)
        await client.aclose()


def create_cluster(nodes: list[Node]) -> None:
    subprocess.run(["redis-cli", "--cluster", "create",
                    *[f"127.0.0.1:{n.port}" for n in nodes], "--cluster-replicas", "0",
                    "--cluster-yes"], check=True, stdout=subprocess.DEVNULL, timeout=60)


async def wait_cluster_ok(nodes: list[Node]) -> None:
    for node in nodes:
        client = aioredis.Redis(port=node.port, decode_responses=True)
        for _ in range(200):
            info = await client.execute_command("CLUSTER", "INFO")
            if "cluster_state:ok" in info:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"cluster not ok on {node.port}")
        await client.aclose()


async def slot_owners(nodes: list[Node]) -> dict[int, int]:
    """slot -> port of the master that owns it."""
    client = aioredis.Redis(port=nodes[0].port)
    owners: dict[int, int] = {}
    for start, end, master, *_replicas in await client.execute_command("CLUSTER", "SLOTS"):
        for slot in range(int(start), int(end) + 1):
            owners[slot] = int(master[1])
    await client.aclose()
    return owners


# -- key names ---------------------------------------------------------------------------------
def tagged(user_id: int, event_id: str) -> tuple[list[str], str]:
    """The user's stream keys and channel with a hash tag: one slot per user."""
    tag = f"pawhome:{{u:{user_id}}}"
    return [f"{tag}:ev:meta", f"{tag}:ev:log", f"{tag}:ev:dedup:{event_id}"], f"{tag}:ws"


def untagged(user_id: int, event_id: str) -> tuple[list[str], str]:
    """Today's names (pawhome/platform/streams.py, channels.py)."""
    return ([f"pawhome:ev:meta:{user_id}", f"pawhome:ev:log:{user_id}",
             f"pawhome:ev:dedup:{user_id}:{event_id}"], f"pawhome:ws:user:{user_id}")


def event_json(user_id: int, n: int) -> tuple[str, str]:
    event_id = secrets.token_hex(8)
    ts = int(time.time() * 1000)
    return event_id, (f'{{"id":"{event_id}","type":"chat.message",'
                      f'"data":{{"n":{n},"to":{user_id}}},"ts":{ts}}}')


def script_args(payload: str, channel: str) -> list:
    return [secrets.token_hex(6), payload, RETENTION["maxlen"], RETENTION["ttl"],
            RETENTION["dedup_ttl"], int(time.time() * 1000), channel, RETENTION["max_age_ms"]]


# The cluster's append: APPEND_LUA with SPUBLISH (sharded) or PUBLISH (classic) at the end.
SHARDED_APPEND_LUA = APPEND_LUA.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
assert SHARDED_APPEND_LUA != APPEND_LUA
# APPEND_MANY for the events of one node: Redis 7's allow-cross-slot-keys flag lets a script
# touch keys of several slots that one node serves, but the keys it DECLARES must still be in
# one slot; so it declares one (which routes the call) and takes the key names from ARGV.
SHARDED_APPEND_MANY_LUA = """#!lua flags=allow-cross-slot-keys
local nk = tonumber(ARGV[1])
local K, A = {}, {}
for i = 2, nk + 1 do K[#K + 1] = ARGV[i] end
for i = nk + 2, #ARGV do A[#A + 1] = ARGV[i] end
local KEYS, ARGV = K, A
""" + APPEND_MANY_LUA.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
assert "SPUBLISH" in SHARDED_APPEND_MANY_LUA


# -- the phases --------------------------------------------------------------------------------
async def check_slots(nodes: list[Node]) -> dict:
    cluster = aioredis.Redis(port=nodes[0].port, decode_responses=True)
    keys, channel = tagged(42, "e1")
    same = {key_slot(k.encode()) for k in [*keys, channel]}
    old_keys, old_channel = untagged(42, "e1")
    old = {key_slot(k.encode()) for k in [*old_keys, old_channel]}
    # Today's layout on a cluster node: the script's keys span slots.
    try:
        await cluster.eval(APPEND_LUA, 3, *old_keys, *script_args("{}", old_channel))
        crossslot = "no error"
    except Exception as error:  # CROSSSLOT, or MOVED when the first key lives elsewhere
        crossslot = str(error).split("\n")[0][:80]
    await cluster.aclose()
    return {"tagged_slots": len(same), "untagged_slots": len(old),
            "untagged_script_error": crossslot}


async def run_load(nodes: list[Node], owners: dict[int, int], config: dict, *,
                   sharded: bool, per_node: bool = False) -> dict:
    """Append config["events"] events for config["users"] users through per-node pipelines,
    with one subscriber connection per master holding every user's channel; count what the
    subscribers receive."""
    script = SHARDED_APPEND_MANY_LUA if per_node else \
        SHARDED_APPEND_LUA if sharded else APPEND_LUA
    clients = {n.port: aioredis.Redis(port=n.port) for n in nodes}
    shas = {port: await c.script_load(script) for port, c in clients.items()}
    users = list(range(1, config["users"] + 1))
    prefix = secrets.token_hex(3)  # a fresh key space per run

    def names(user_id: int, event_id: str) -> tuple[list[str], str]:
        keys, channel = tagged(user_id, event_id)
        return [k.replace("pawhome:", f"pawhome{prefix}:") for k in keys], \
            channel.replace("pawhome:", f"pawhome{prefix}:")

    def owner(user_id: int) -> int:
        return owners[key_slot(names(user_id, "x")[1].encode())]

    received: dict[int, list[int]] = defaultdict(list)
    subscribers = []
    by_node: dict[int, list[str]] = defaultdict(list)
    for user_id in users:
        by_node[owner(user_id)].append(names(user_id, "x")[1])
    # One connection per master (sharded) or one connection anywhere (classic PUBLISH reaches
    # every node, so a subscriber on any node hears every channel).
    listen_ports = list(by_node) if sharded else [nodes[0].port]
    for port in listen_ports:
        sub = aioredis.Redis(port=port).pubsub()
        channels = by_node[port] if sharded else [c for cs in by_node.values() for c in cs]
        if sharded:  # one SSUBSCRIBE per channel: a multi-channel one must be one slot
            for channel in channels:
                await sub.ssubscribe(channel)
        else:
            for start in range(0, len(channels), 500):
                await sub.subscribe(*channels[start:start + 500])
        subscribers.append(sub)
    await asyncio.sleep(0.5)
    done = asyncio.Event()
    total = config["events"]
    count = 0

    async def listen(sub) -> None:
        nonlocal count
        while not done.is_set():
            message = await sub.get_message(timeout=0.5)
            if message and message["type"] in ("message", "smessage"):
                channel = message["channel"].decode()
                user_id = int(channel.split("{u:")[1].split("}")[0])
                body = message["data"].decode()
                received[user_id].append(int(body.split('"eid":')[1].split(",")[0]))
                count += 1
                if count >= total:
                    done.set()

    listeners = [asyncio.create_task(listen(s)) for s in subscribers]
    cpu_before = {n.port: cpu_seconds(n.proc.pid) for n in nodes}
    started = time.monotonic()
    sent = 0
    expected: dict[int, int] = defaultdict(int)
    while sent < total:
        batch: dict[int, list] = defaultdict(list)
        for _ in range(min(config["batch"], total - sent)):
            user_id = users[sent % len(users)]
            event_id, payload = event_json(user_id, sent)
            keys, channel = names(user_id, event_id)
            batch[owner(user_id)].append((keys, script_args(payload, channel)))
            expected[user_id] += 1
            sent += 1

        async def one_node(port: int, items: list) -> None:
            if per_node:  # APPEND_MANY's argument layout: common args, then per event
                keys = [k for item_keys, _args in items for k in item_keys]
                args = [*items[0][1][2:6], items[0][1][7], items[0][1][0]]
                for _keys, item_args in items:
                    args += [item_args[1], item_args[6]]
                await clients[port].evalsha(shas[port], 1, keys[0], len(keys), *keys, *args)
                return
            async with clients[port].pipeline(transaction=False) as pipe:
                for keys, args in items:
                    pipe.evalsha(shas[port], 3, *keys, *args)
                await pipe.execute()
        await asyncio.gather(*(one_node(p, items) for p, items in batch.items()))
    append_seconds = time.monotonic() - started
    try:
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        pass
    elapsed = time.monotonic() - started
    done.set()
    for outcome in await asyncio.gather(*listeners, return_exceptions=True):
        if isinstance(outcome, Exception):
            raise outcome
    cpu = sum(cpu_seconds(n.proc.pid) - cpu_before[n.port] for n in nodes)
    # Exactly once and in order per user: ids 1..k.
    exact = all(received[u] == list(range(1, expected[u] + 1)) for u in expected)
    # Every stream holds its events.
    lengths_ok = True
    for user_id in users[:50]:
        keys, _channel = names(user_id, "x")
        if await clients[owner(user_id)].xlen(keys[1]) != expected[user_id]:
            lengths_ok = False
    for sub in subscribers:
        await sub.aclose()
    for client in clients.values():
        await client.aclose()
    return {"events": total, "received": count, "exactly_once_in_order": exact,
            "streams_complete": lengths_ok, "append_seconds": round(append_seconds, 3),
            "events_per_second": round(total / append_seconds),
            "delivery_seconds": round(elapsed, 3),
            "cluster_cpu_us_per_event": round(cpu / total * 1e6, 1),
            "per_node_users": {str(p): len(c) for p, c in by_node.items()}}


async def run_standalone(node: Node, config: dict) -> dict:
    """Today's way on one Redis: APPEND_MANY for the batch, one call, classic PUBLISH."""
    client = aioredis.Redis(port=node.port)
    sub = aioredis.Redis(port=node.port).pubsub()
    users = list(range(1, config["users"] + 1))
    channels = [untagged(u, "x")[1] for u in users]
    for start in range(0, len(channels), 500):
        await sub.subscribe(*channels[start:start + 500])
    total, count = config["events"], 0
    done = asyncio.Event()

    async def listen() -> None:
        nonlocal count
        while not done.is_set():
            message = await sub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                count += 1
                if count >= total:
                    done.set()
    listener = asyncio.create_task(listen())
    sha = await client.script_load(APPEND_MANY_LUA)
    cpu_before = cpu_seconds(node.proc.pid)
    started = time.monotonic()
    sent = 0
    while sent < total:
        keys: list[str] = []
        args: list = [RETENTION["maxlen"], RETENTION["ttl"], RETENTION["dedup_ttl"],
                      int(time.time() * 1000), RETENTION["max_age_ms"], secrets.token_hex(6)]
        for _ in range(min(config["batch"], total - sent)):
            user_id = users[sent % len(users)]
            event_id, payload = event_json(user_id, sent)
            names, channel = untagged(user_id, event_id)
            keys += names
            args += [payload, channel]
            sent += 1
        await client.evalsha(sha, len(keys), *keys, *args)
    append_seconds = time.monotonic() - started
    try:
        await asyncio.wait_for(done.wait(), 30)
    except TimeoutError:
        pass
    done.set()
    await listener
    cpu = cpu_seconds(node.proc.pid) - cpu_before
    await sub.aclose()
    await client.aclose()
    return {"events": total, "received": count, "append_seconds": round(append_seconds, 3),
            "events_per_second": round(total / append_seconds),
            "redis_cpu_us_per_event": round(cpu / total * 1e6, 1)}


def write_markdown(r: dict) -> str:
    c = r["config"]
    s, sh, cl = r["standalone"], r["cluster_sharded"], r["cluster_classic"]
    pn = r["cluster_sharded_per_node"]
    return "\n".join([
        "# Redis Cluster check (`bench/bench_redis_cluster.py`)", "",
        f"Run {r['when']} on {os.cpu_count()} CPUs; machine {r['busy_before']} % busy before "
        "the start (other work shares it: compare the rows of this run, not absolute figures "
        f"across runs). A cluster of {c['masters']} masters started by the script, "
        f"{c['users']} users, {c['events']} events appended in batches of {c['batch']}, the "
        "client on one core.", "",
        "## Slots", "",
        f"- with a hash tag per user (`pawhome:{{u:42}}:ev:meta|log|dedup:…`, channel "
        f"`pawhome:{{u:42}}:ws`): {r['slots']['tagged_slots']} slot",
        f"- with today's names (`pawhome:ev:meta:42`, `pawhome:ws:user:42`, …): "
        f"{r['slots']['untagged_slots']} slots; the append script on the cluster: "
        f"`{r['slots']['untagged_script_error']}`", "",
        "## Appends and delivery", "",
        "| case | events/s appended | received | exactly once, in order | streams complete "
        "| Redis CPU µs per event (all nodes) |",
        "|---|---:|---:|---|---|---:|",
        f"| one Redis, APPEND_MANY per batch, PUBLISH (today) | {s['events_per_second']} | "
        f"{s['received']}/{s['events']} | – | – | {s['redis_cpu_us_per_event']} |",
        f"| cluster, a script per event pipelined per node, SPUBLISH | "
        f"{sh['events_per_second']} | {sh['received']}/{sh['events']} | "
        f"{sh['exactly_once_in_order']} | {sh['streams_complete']} | "
        f"{sh['cluster_cpu_us_per_event']} |",
        f"| cluster, ONE APPEND_MANY call per node (allow-cross-slot-keys), SPUBLISH | "
        f"{pn['events_per_second']} | {pn['received']}/{pn['events']} | "
        f"{pn['exactly_once_in_order']} | {pn['streams_complete']} | "
        f"{pn['cluster_cpu_us_per_event']} |",
        f"| cluster, a script per event with classic PUBLISH | {cl['events_per_second']} | "
        f"{cl['received']}/{cl['events']} | {cl['exactly_once_in_order']} | "
        f"{cl['streams_complete']} | {cl['cluster_cpu_us_per_event']} |", "",
        f"Users per master: {sh['per_node_users']}. Classic PUBLISH on a cluster is sent to "
        "every node over the cluster bus, so every node pays for every event and adding "
        "masters adds no pub/sub capacity; SPUBLISH stays on the shard that owns the "
        "channel. On this 2-core machine the three masters share the cores with the "
        "client, so the events/s show the shape, not a cluster's capacity.", ""])


async def main_async(config: dict) -> dict:
    cluster = [Node(cluster=True) for _ in range(config["masters"])]
    single = Node(cluster=False)
    try:
        await wait_up([*cluster, single])
        create_cluster(cluster)
        await wait_cluster_ok(cluster)
        owners = await slot_owners(cluster)
        slots = await check_slots(cluster)
        print("slots:", slots, flush=True)
        standalone = await run_standalone(single, config)
        print("standalone:", standalone, flush=True)
        sharded = await run_load(cluster, owners, config, sharded=True)
        print("cluster sharded:", sharded, flush=True)
        per_node = await run_load(cluster, owners, config, sharded=True, per_node=True)
        print("cluster sharded, one call per node:", per_node, flush=True)
        classic = await run_load(cluster, owners, config, sharded=False)
        print("cluster classic:", classic, flush=True)
    finally:
        for node in [*cluster, single]:
            node.stop()
    return {"slots": slots, "standalone": standalone, "cluster_sharded": sharded,
            "cluster_sharded_per_node": per_node,
            "cluster_classic": classic}


def main() -> None:
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        sys.exit("needs redis-server and redis-cli (apt-get install redis-server)")
    args, config, started, _cores = gw.start_run(__doc__, FULL, QUICK)
    busy = machine_busy_percent(1.0)
    result = asyncio.run(main_async(config))
    result.update({"when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   "config": config, "busy_before": busy})
    gw.finish_run("redis_cluster", result, write_markdown(result), args.quick, started)




if __name__ == "__main__":
    main()
