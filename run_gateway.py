"""Start gateway processes: `python run_gateway.py --port 8000 --processes 2`.

With --processes N > 1, N processes listen on consecutive ports (port, port+1, ...), each an
independent upstream for nginx; supervisor runs them the same way (one program per port).
SIGTERM/SIGINT trigger a graceful shutdown (gateway/app.py).

The gateway's composition root: it gives the runtime its route table (handlers.ROUTES) and,
by importing the Celery app, installs the task dispatcher the outbox relay hands tasks to.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal

import workers.celery_app  # noqa: F401  (installs the task dispatcher; every domain wired)
from gateway.app import Gateway
from gateway.shutdown import stop_signal
from handlers import ROUTES
from pawhome.console import demo_staff
from pawhome.platform.embedded import EmbeddedBeat, describe, prepare_embedded
from pawhome.platform.logs import setup_logging
from settings import Settings, get_settings
from workers.schedule import beat_schedule

log = logging.getLogger("pawhome.gateway")


async def serve(port: int, address: str) -> None:
    settings = get_settings()
    gateway = Gateway(settings, ROUTES)
    beat = EmbeddedBeat(gateway.resources, embedded_beat_jobs(settings))
    console_logins: list[tuple[str, str, str]] = []
    if settings.embedded:
        await prepare_embedded(gateway.resources)
        console_logins = await demo_staff.reset_demo_staff(gateway.resources)
    gateway.start(port, address)
    beat.start()
    tune_gc(settings.ws_gc_thresholds)
    log.info("gateway listening", extra={"fields": {"port": port, "mode": settings.mode}})
    stop = stop_signal()
    if settings.dev_login:
        print(startup_banner(settings, f"http://{address}:{port}"), flush=True)
    if settings.embedded:
        print(console_banner(f"http://{address}:{port}", console_logins), flush=True)
    await stop.wait()
    log.info("gateway stopping", extra={"fields": {"port": port}})
    await beat.stop()
    await gateway.shutdown()


# The gateway relays the outbox itself, and embedded mode has no WeChat to refresh a token of.
EMBEDDED_BEAT_SKIPS = ("default.relay_outbox", "notify.refresh_wechat_token")


def embedded_beat_jobs(settings: Settings) -> dict[str, float]:
    """The beat's interval jobs the embedded gateway runs itself (task name → seconds): only
    in embedded mode with in-process tasks (with a broker, run `make beat`)."""
    if not settings.embedded or settings.broker_url:
        return {}
    return {entry["task"]: float(entry["schedule"])
            for entry in beat_schedule(settings).values()
            if isinstance(entry["schedule"], int | float)
            and entry["task"] not in EMBEDDED_BEAT_SKIPS}


def tune_gc(thresholds: str) -> None:
    """WS_GC_THRESHOLDS: freeze what start-up made (modules, models, routes) out of the
    collector's way, and collect young objects less often (settings.py explains why)."""
    if thresholds.strip():
        import gc

        gc.collect()
        gc.freeze()
        gc.set_threshold(*(int(n) for n in thresholds.split(",")))


def startup_banner(settings, base: str) -> str:
    """What `make run` prints: where the gateway is, how to get a dev token, what it runs on."""
    lines = [f"PAWHome gateway ({settings.mode} mode) at {base}/v1  (health: {base}/readyz)"]
    lines += [f"  {name:<9}{where}" for name, where in describe(settings).items()]
    lines += [
        "  dev token:",
        f"    curl -s -XPOST {base}/v1/auth/dev-login -H 'Content-Type: application/json' "
        "-d '{\"openid\":\"demo-user-1\"}'",
        f"    curl -s {base}/v1/users/me -H 'Authorization: Bearer <access_token>'",
    ]
    return "\n".join(lines)


def console_banner(base: str, logins: list[tuple[str, str, str]]) -> str:
    """The web console's address and the demo staff sign-ins (embedded mode only; the
    passwords are new on every start)."""
    lines = [f"  console:  {base}/console"]
    lines += [f"    {label}: {login} / {password}" for login, password, label in logins]
    return "\n".join(lines)


def own_public_base_url(port: int, address: str) -> None:
    """Outside production, with no PUBLIC_BASE_URL given (environment or .env), the
    gateway's own address is its public one, so the upload URLs and local media URLs it hands
    out reach it (`make run PORT=8123`); production must say where it is reached."""
    settings = get_settings()
    if settings.mode != "production" and "public_base_url" not in settings.model_fields_set:
        os.environ["PUBLIC_BASE_URL"] = f"http://{address}:{port}"
        get_settings.cache_clear()  # read before (the Celery app's, the --port default)


def run_one(port: int, address: str) -> None:
    own_public_base_url(port, address)
    settings = get_settings()
    setup_logging(settings.log_level)
    if settings.use_uvloop:
        import uvloop

        uvloop.run(serve(port, address))
    else:
        asyncio.run(serve(port, address))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    settings = get_settings()
    parser.add_argument("--port", type=int, default=settings.gateway_base_port)
    parser.add_argument("--port-offset", type=int, default=0,
                        help="added to --port (supervisor passes its process_num)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    args.port += args.port_offset
    if args.processes > 1 and settings.redis_url.startswith("memory://"):
        # Each process would get its own store: logouts, bans and rate limits not shared.
        parser.error("REDIS_URL=memory:// is per process; set REDIS_URL to a Redis server "
                     "to run several gateway processes")
    if args.processes <= 1:
        run_one(args.port, args.address)
        return
    procs = [multiprocessing.Process(target=run_one, args=(args.port + i, args.address))
             for i in range(args.processes)]
    for p in procs:
        p.start()
    def stop_all(*_: object) -> None:
        for process in procs:
            process.terminate()

    signal.signal(signal.SIGTERM, stop_all)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
