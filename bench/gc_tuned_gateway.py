"""run_gateway.py with a tuned garbage collector, for bench/bench_realtime.py only.

    python bench/gc_tuned_gateway.py --port 8000      (same arguments as run_gateway.py)

Sets gc thresholds (BENCH_GC_THRESHOLDS, default 50000,50,100) and calls gc.freeze() once
the gateway is listening, so the long-lived start-up objects (modules, models, routes,
pydantic schemas) leave the generations the collector walks. Production code is untouched:
this wraps Gateway.start and then runs run_gateway.main().
"""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import handlers  # noqa: E402,F401 - imported now so that its objects are frozen too
import run_gateway  # noqa: E402
from gateway.app import Gateway  # noqa: E402

_original_start = Gateway.start


def _start_then_freeze(self, *args, **kwargs):
    _original_start(self, *args, **kwargs)
    gc.collect()
    gc.freeze()


def main() -> None:
    thresholds = tuple(int(n) for n in
                       os.environ.get("BENCH_GC_THRESHOLDS", "50000,50,100").split(","))
    gc.set_threshold(*thresholds)
    Gateway.start = _start_then_freeze
    run_gateway.main()


if __name__ == "__main__":
    main()
