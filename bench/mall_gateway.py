"""run_gateway.py for bench/bench_mall.py, bench_growth.py and bench_virtualpet.py only: some rate
limits lifted and the log written to a file.

    BENCH_LOG_FILE=/tmp/x.log python bench/mall_gateway.py --port 8000

- `mall.products` (GET /v1/products) allows 1,200 requests a minute per IP; the load comes
  from one IP (127.0.0.1) and uses that up in well under a second.
- `orders.pay` (POST /v1/orders/{id}/pay) allows 5 a minute per user; the set-up of the
  notify benchmark asks for several hundred prepays of 50 buyers.
- `home.mall` (GET /v1/home/mall, bench/bench_growth.py) has the default rules, 1,200 a minute
  per IP and 600 per user: the same single IP, and 50 users each asking many times a second.
- `virtual_pets.detail` and `virtual_pets.interactions` (bench/bench_virtualpet.py) have the
  default rules: one IP, and one owner asking for its pet thousands of times a second.
- `leaderboards.board` (GET /v1/leaderboards/{kind}, bench/bench_leaderboard.py) has the
  default rules: the same single IP, 64 users asking many times a second.
Each is replaced IN THIS PROCESS ONLY by a rule of the same scope that never trips (still one
Lua call per request, with a 1-second window so the window's sorted set stays small).
POST /v1/orders keeps its production rule (`orders.list`, 60 a minute per user): every buyer
places fewer orders than that per case, and the bench clears the windows between cases.
The notify endpoint keeps its production rule (12,000 a minute per IP) too.
File descriptor 2 goes to BENCH_LOG_FILE, so the JSON log (the access log included, at
LOG_LEVEL=INFO) goes to that file as it would under a process manager. Production code is
unchanged.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import run_gateway  # noqa: E402
from gateway import ratelimit  # noqa: E402

LIFTED = {
    "mall.products": (ratelimit.Rule("ip", 1_000_000_000, 1),),
    "orders.pay": (ratelimit.Rule("user", 1_000_000_000, 1),),
    "home.mall": (ratelimit.Rule("ip", 1_000_000_000, 1), ratelimit.Rule("user", 1_000_000_000, 1)),
    "virtual_pets.detail": (ratelimit.Rule("ip", 1_000_000_000, 1),
                            ratelimit.Rule("user", 1_000_000_000, 1)),
    "virtual_pets.interactions": (ratelimit.Rule("ip", 1_000_000_000, 1),
                                  ratelimit.Rule("user", 1_000_000_000, 1)),
    "leaderboards.board": (ratelimit.Rule("ip", 1_000_000_000, 1),
                           ratelimit.Rule("user", 1_000_000_000, 1)),
}


def main() -> None:
    ratelimit.RULES.update(LIFTED)
    log_file = os.environ.get("BENCH_LOG_FILE")
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    run_gateway.main()


if __name__ == "__main__":
    main()
