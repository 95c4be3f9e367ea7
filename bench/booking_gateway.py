"""run_gateway.py for bench/bench_booking.py only: bench/mall_gateway.py (its lifted rules, the
log to BENCH_LOG_FILE) with the per-IP rule of three booking routes lifted as well.

    BENCH_LOG_FILE=/tmp/x.log python bench/booking_gateway.py --port 8000

`booking.slots` (GET /v1/services/{id}/slots), `appointments.holds` and `appointments.list`
(POST /v1/appointments, the confirmation) have no rule of their own, so they get
`DEFAULT_RULES`: 1,200 a minute per IP and 600 per user. All the load comes from one IP
(127.0.0.1) and uses the IP window up in about a second. Their IP rule is replaced IN THIS
PROCESS ONLY by one that never trips (still one Lua call per request, a 1-second window); the
per-user rule of the holds and confirmations stays the production one (each bench user makes
far fewer a minute). Production code is unchanged.
"""
from __future__ import annotations

import mall_gateway

from gateway import ratelimit

NEVER = ratelimit.Rule("ip", 1_000_000_000, 1)
USER = next(r for r in ratelimit.DEFAULT_RULES if r.scope == "user")

if __name__ == "__main__":
    mall_gateway.LIFTED.update({"booking.slots": (NEVER,),
                                "appointments.holds": (NEVER, USER),
                                "appointments.list": (NEVER, USER)})
    mall_gateway.main()
