"""run_gateway.py for bench/bench_rest_floor.py only: bench/mall_gateway.py (its lifted rules,
the log to BENCH_LOG_FILE) with the rules of the five measured reads lifted as well.

    BENCH_LOG_FILE=/tmp/x.log python bench/rest_floor_gateway.py --port 8000

All the load comes from one IP (127.0.0.1) and 64 users each asking thousands of times a
minute: `posts.list`, `mall.product`, `booking.slots` (per IP) and `orders.list` (60 a minute
per user) would refuse it within a second. Each is replaced IN THIS PROCESS ONLY by a rule of
the same scope that never trips — still one Lua call per request, in the same admission call
that reads the token's revocation marks and the cached page — as bench/mall_gateway.py and
bench/booking_gateway.py do for theirs. Production code is unchanged.
"""
from __future__ import annotations

import mall_gateway
from booking_gateway import NEVER

from gateway import ratelimit

NEVER_PER_USER = ratelimit.Rule("user", 1_000_000_000, 1)

if __name__ == "__main__":
    mall_gateway.LIFTED.update({"posts.list": (NEVER,),
                                "mall.product": (NEVER, NEVER_PER_USER),
                                "booking.slots": (NEVER,),
                                "orders.list": (NEVER_PER_USER,)})
    mall_gateway.main()
