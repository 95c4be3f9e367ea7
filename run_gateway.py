"""Start gateway processes: `python run_gateway.py --port 8000 --processes 2`.

With --processes N > 1, N processes listen on consecutive ports (port, port+1, ...), each an
independent upstream for nginx; supervisor runs them the same way (one program per port).
SIGTERM/SIGINT trigger a graceful shutdown (gateway/app.py).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal

from pawhome.logs import setup_logging
from settings import get_settings

log = logging.getLogger("pawhome.gateway")


async def serve(port: int, address: str) -> None:
    from gateway.app import Gateway

    settings = get_settings()
    gateway = Gateway(settings)
    if settings.embedded:
        from pawhome.embedded import prepare_embedded

        await prepare_embedded(gateway.resources)
    gateway.start(port, address)
    log.info("gateway listening", extra={"fields": {"port": port, "mode": settings.mode}})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.embedded:
        print(f"PAWHome gateway (embedded mode) at http://{address}:{port}/v1  —  "
              f"dev token: curl -s -XPOST http://{address}:{port}/v1/auth/dev-login "
              f"-H 'Content-Type: application/json' -d '{{\"openid\":\"demo-user-1\"}}'",
              flush=True)
    await stop.wait()
    log.info("gateway stopping", extra={"fields": {"port": port}})
    await gateway.shutdown()


def run_one(port: int, address: str) -> None:
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
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes <= 1:
        run_one(args.port, args.address)
        return
    procs = [multiprocessing.Process(target=run_one, args=(args.port + i, args.address))
             for i in range(args.processes)]
    for p in procs:
        p.start()
    signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
