"""The load-client side of bench/bench_connect.py: a connect storm, then a disconnect storm.

    python bench/ws_connect_load.py SPEC.json

Opens one socket per (uid, token) of SPEC with `concurrency` handshakes in flight, as fast
as the server answers: against the gateway a connection counts once it is set up for good
(token checked, admitted, subscribed, `hello`, then `resume` answered by `resumed`), against
bench/bare_ws_relay.py once `hello` arrived. Then, after a pause, it closes every socket at
once and (gateway only) polls Redis until every user is offline (`presence:<uid>` has no
unexpired entry) and no process is subscribed to any user's channel (PUBSUB NUMSUB).
Prints one line `RESULT {...}`. Sockets are bench/ws_load.py's lean `Sock`.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ws_load import Sock, cpu_seconds, ms, now, percentile, raise_fd_limit, socket_url  # noqa: E402

_CHUNK = 1000  # users per Redis command while polling


async def connect_storm(spec: dict) -> tuple[list[Sock], list[float], list[str], float]:
    bare = spec["bare"]
    users = spec["users"]
    socks: list[Sock] = []
    latencies: list[float] = []
    failures: list[str] = []
    queue = iter(users)

    async def worker() -> None:
        for uid, token in queue:
            sock = Sock(uid, None)
            started = now()
            try:
                await sock.open(socket_url(spec["url"], uid, bare), token, bare,
                                timeout=spec.get("timeout", 60))
            except Exception as error:
                failures.append(repr(error)[:200])
                continue
            latencies.append(now() - started)
            socks.append(sock)

    started = now()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    return socks, latencies, failures, now() - started


async def left_behind(redis, spec: dict) -> tuple[int, int]:
    """(users still online, user channels still subscribed) of the run's users."""
    prefix = spec["prefix"]
    uids = [uid for uid, _ in spec["users"]]
    now_ms = int(time.time() * 1000)
    online = subscribed = 0
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start:start + _CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for uid in chunk:
                pipe.zcount(f"{prefix}presence:{uid}", now_ms, "+inf")
            online += sum(1 for n in await pipe.execute() if int(n) > 0)
        counts = await redis.execute_command(
            "PUBSUB", "NUMSUB", *(f"{prefix}ws:user:{uid}" for uid in chunk))
        subscribed += sum(1 for n in counts[1::2] if int(n) > 0)
    return online, subscribed


async def disconnect_storm(socks: list[Sock], spec: dict) -> dict:
    if spec["bare"]:
        for sock in socks:
            sock.close()
        await asyncio.sleep(0.5)
        return {}
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(spec["redis_url"])
    try:
        online_before, subscribed_before = await left_behind(redis, spec)
        started = now()
        for sock in socks:  # all at once: no await between the closes
            sock.close()
        offline_at = unsubscribed_at = None
        online, subscribed = online_before, subscribed_before
        deadline = started + spec.get("cleanup_timeout", 30)
        while now() < deadline:
            online, subscribed = await left_behind(redis, spec)
            if online == 0 and offline_at is None:
                offline_at = now() - started
            if subscribed == 0 and unsubscribed_at is None:
                unsubscribed_at = now() - started
            if offline_at is not None and unsubscribed_at is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    return {"online_before_close": online_before,
            "subscribed_before_close": subscribed_before,
            "all_offline_after_s": None if offline_at is None else round(offline_at, 2),
            "all_unsubscribed_after_s": None if unsubscribed_at is None
            else round(unsubscribed_at, 2),
            "still_online": online, "still_subscribed": subscribed}


async def run(spec: dict) -> dict:
    await asyncio.sleep(0.5)  # the server has just started: let it settle
    cpu_before = cpu_seconds(spec["server_pid"])
    client_before = time.process_time()
    socks, latencies, failures, seconds = await connect_storm(spec)
    cpu = cpu_seconds(spec["server_pid"]) - cpu_before
    client_cpu = time.process_time() - client_before
    result = {
        "clients": len(spec["users"]), "concurrency": spec["concurrency"],
        "connected": len(socks), "failed": len(failures), "failures_sample": failures[:3],
        "seconds": round(seconds, 2),
        "connects_per_second": round(len(socks) / seconds, 1),
        "latency_p50_ms": ms(percentile(latencies, 50)),
        "latency_p99_ms": ms(percentile(latencies, 99)),
        "latency_max_ms": ms(max(latencies) if latencies else None),
        "server_cpu_us_per_connect": round(cpu / max(1, len(socks)) * 1e6, 1),
        "server_cpu_percent": round(100 * cpu / seconds, 1),
        # The load client's own core: near 100, it (not the server) set the pace.
        "client_cpu_percent": round(100 * client_cpu / seconds, 1),
    }
    await asyncio.sleep(spec.get("settle_seconds", 1.0))
    open_count = sum(1 for s in socks if not s.closed)
    result["still_open_before_close"] = open_count
    result.update(await disconnect_storm(socks, spec))
    return result


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    raise_fd_limit()
    print("RESULT " + json.dumps(asyncio.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
