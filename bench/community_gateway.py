"""run_gateway.py for bench/bench_community.py only: the feed's per-IP rate limit lifted and
the log written to a file.

    BENCH_LOG_FILE=/tmp/x.log python bench/community_gateway.py --port 8000

GET /v1/posts has no limit of its own in gateway/ratelimit.py, so it gets DEFAULT_RULES, of
which only the per-IP rule applies (the endpoint is auth=False, so the per-user rule is
never counted): 1,200 requests a minute from 127.0.0.1, which 64 connections exhaust in
under a second. No setting changes it (RULES is the one place), so this wrapper replaces the
posts.list rule IN THIS PROCESS ONLY with one per-IP rule that never trips - the same one
Lua call per request as production, with a 1-second window so the window's sorted set stays
about as small as production's (at most 1,200 members). Production code is unchanged.
It also points file descriptor 2 at BENCH_LOG_FILE, so the JSON log (access log included,
at LOG_LEVEL=INFO) goes to that file as it would under a process manager.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import run_gateway  # noqa: E402
from gateway import ratelimit  # noqa: E402

UNLIMITED_FEED = (ratelimit.Rule("ip", 1_000_000_000, 1),)


def main() -> None:
    ratelimit.RULES["posts.list"] = UNLIMITED_FEED
    log_file = os.environ.get("BENCH_LOG_FILE")
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    run_gateway.main()


if __name__ == "__main__":
    main()
