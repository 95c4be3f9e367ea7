"""Start a Celery worker (or beat): `python run_worker.py --queues default,notify --concurrency 2`.

Queue names are the unprefixed workload names (default, media, moderation, search, notify,
payments, ai);
TASK_QUEUE_PREFIX is applied from settings. `--beat` runs the beat scheduler instead (exactly
one per deployment), `--flower` the Flower monitor. All read settings.py; supervisor runs one
program per queue group (supervisor/supervisord.conf).
"""
from __future__ import annotations

import argparse
import os
import socket

from settings import get_settings
from workers.celery_app import QUEUE_NAMES, celery_app, queue_name


def worker_argv(queues: list[str], concurrency: int, loglevel: str, pool: str,
                hostname: str | None = None) -> list[str]:
    settings = get_settings()
    unknown = [q for q in queues if q not in QUEUE_NAMES]
    if unknown:
        raise SystemExit(f"unknown queue(s) {unknown}; queues are {', '.join(QUEUE_NAMES)}")
    # A unique node name per queue group (and per environment) keeps Flower and control
    # commands unambiguous when several groups run on one host.
    node = hostname or f"{settings.task_queue_prefix}{'-'.join(queues)}@{socket.gethostname()}"
    argv = ["worker", "--queues", ",".join(queue_name(settings, q) for q in queues),
            "--loglevel", loglevel, "--hostname", node, "--pool", pool,
            "--without-mingle", "--without-gossip"]
    if pool != "solo":
        argv += ["--concurrency", str(concurrency or settings.worker_concurrency
                                      or os.cpu_count() or 1)]
    return argv


def flower_argv() -> list[str]:
    """Flower on the app's own broker (same URL, same key prefix) with settings' port/auth."""
    settings = get_settings()
    argv = ["flower", f"--port={settings.flower_port}", f"--address={settings.flower_address}"]
    if settings.flower_basic_auth:
        argv.append(f"--basic-auth={settings.flower_basic_auth}")
    if settings.flower_url_prefix:
        argv.append(f"--url_prefix={settings.flower_url_prefix}")
    return argv


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", default=",".join(QUEUE_NAMES),
                        help="comma-separated queues to consume (default: all)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="child processes (default: WORKER_CONCURRENCY or one per CPU)")
    parser.add_argument("--pool", default="prefork", choices=("prefork", "threads", "solo"))
    parser.add_argument("--hostname", default=None, help="node name (default: from queues)")
    parser.add_argument("--beat", action="store_true", help="run the beat scheduler instead")
    parser.add_argument("--flower", action="store_true",
                        help="run Flower (FLOWER_PORT, FLOWER_BASIC_AUTH) instead")
    parser.add_argument("--loglevel", default=settings.log_level)
    args = parser.parse_args()
    settings.check_production()
    if not settings.broker_url:
        raise SystemExit("BROKER_URL is not set: in embedded mode tasks run inside the gateway")


    if args.flower:
        celery_app.start(flower_argv())
        return
    if args.beat:
        os.makedirs(os.path.dirname(settings.beat_schedule_file) or ".", exist_ok=True)
        celery_app.start(["beat", "--loglevel", args.loglevel,
                          "--schedule", settings.beat_schedule_file])
        return
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    celery_app.worker_main(worker_argv(queues, args.concurrency, args.loglevel, args.pool,
                                       args.hostname))


if __name__ == "__main__":
    main()
