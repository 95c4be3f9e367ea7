"""Graceful shutdown of a real gateway process on SIGTERM (see tests/slow_gateway.py):
in-flight requests finish, new connections are refused, kept-alive connections get 503 and
are closed, WebSockets get close code 1001, and the process exits 0 within the grace."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
import tornado.websocket
from tornado.httpclient import HTTPRequest
from tornado.simple_httpclient import HTTPStreamClosedError

from gateway.shutdown import DRAIN_TICK_SECONDS, GOING_AWAY_CODE, closing_due, drain_window
from pawhome.platform import codec
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
GRACE = 10.0


async def read_line_with(stdout: asyncio.StreamReader, wanted: str, timeout: float = 20) -> None:
    async def scan() -> None:
        while True:
            line = await stdout.readline()
            if not line:
                raise AssertionError(f"gateway exited before printing {wanted!r}")
            if line.decode().strip() == wanted:
                return
    await asyncio.wait_for(scan(), timeout)


async def http_get(reader, writer, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an already open (kept-alive) connection."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.fixture
def spawn_gateway(io_loop):
    """`await spawn_gateway(grace)` starts tests/slow_gateway.py; returns (process, port)."""
    started = []
    stderr = tempfile.TemporaryFile()

    async def spawn(grace: float = GRACE, **settings: str):
        port = free_port()
        env = {**os.environ, "SHUTDOWN_GRACE_SECONDS": str(grace), **settings}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.slow_gateway", "--port", str(port), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=stderr)
        started.append(proc)
        await read_line_with(proc.stdout, "ready")
        return proc, port

    yield spawn
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            io_loop.run_sync(proc.wait)
    stderr.seek(0)
    log = stderr.read().decode(errors="replace")
    if log.strip():
        print("gateway stderr:\n" + log[-5000:])


@pytest.mark.gen_test(timeout=60)
async def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(spawn_gateway,
                                                                      http_client):
    proc, port = await spawn_gateway()
    base = f"127.0.0.1:{port}"
    socket_ = await tornado.websocket.websocket_connect(f"ws://{base}/v1/test/ws")
    socket_.write_message("ping")
    assert await socket_.read_message() == "ping"
    kept_alive = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for reader, writer in kept_alive:
        status, headers, _ = await http_get(reader, writer, "/healthz")
        assert status == 200 and headers.get("connection", "").lower() != "close"

    slow = asyncio.ensure_future(http_client.fetch(
        HTTPRequest(f"http://{base}/v1/test/slow?seconds=3", request_timeout=30),
        raise_error=False))
    await read_line_with(proc.stdout, "slow-started")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    # WebSocket clients are told to go elsewhere at once.
    assert await asyncio.wait_for(socket_.read_message(), 5) is None
    assert socket_.close_code == GOING_AWAY_CODE

    # The listening socket closes: new connections are refused.
    deadline = time.monotonic() + 5
    while not await connection_refused(port):
        assert time.monotonic() < deadline, "gateway still accepts connections after SIGTERM"
        await asyncio.sleep(0.05)

    # A request on a kept-alive connection is refused with 503 and the connection closed.
    reader, writer = kept_alive[0]
    status, headers, body = await http_get(reader, writer, "/healthz")
    assert status == 503 and codec.loads(body)["code"] == 50306
    assert headers["connection"].lower() == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # server closed it
    reader, writer = kept_alive[1]
    status, _, _ = await http_get(reader, writer, "/readyz")
    assert status == 503

    # The request in flight when the signal came still completes.
    response = await slow
    assert response.code == 200, response.body
    assert codec.loads(response.body)["data"] == {"slept": 3.0}

    returncode = await asyncio.wait_for(proc.wait(), GRACE + 5)
    assert returncode == 0
    assert time.monotonic() - signalled < GRACE
    for _, writer in kept_alive:
        writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_longer_than_the_grace_is_cut_at_the_deadline(spawn_gateway,
                                                                      http_client):
    grace = 2.0
    proc, port = await spawn_gateway(grace)
    slow = asyncio.ensure_future(http_client.fetch(
        HTTPRequest(f"http://127.0.0.1:{port}/v1/test/slow?seconds=60", request_timeout=60),
        raise_error=False))
    await read_line_with(proc.stdout, "slow-started")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    returncode = await asyncio.wait_for(proc.wait(), grace + 10)
    assert returncode == 0
    assert grace - 0.5 < time.monotonic() - signalled < grace + 5
    with pytest.raises(HTTPStreamClosedError):  # closed at the deadline, not answered
        await slow


@pytest.mark.gen_test(timeout=60)
async def test_sockets_are_told_to_go_away_a_share_at_a_time(spawn_gateway):
    """A stopping gateway closes its sockets at WS_DRAIN_PER_SECOND: 60 sockets at 30 a
    second go over 2 s (half the grace at most), a share per tick, every one with 1001, and
    the ones not yet closed still answer meanwhile."""
    proc, port = await spawn_gateway(GRACE, WS_DRAIN_PER_SECOND="30")
    sockets = [await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/v1/test/ws")
               for _ in range(60)]
    for n, socket_ in enumerate(sockets):
        socket_.write_message(f"hi {n}")
        assert await socket_.read_message() == f"hi {n}"
    closed_at: list[float] = []
    still_open_answered = []

    async def watch(socket_) -> None:
        while True:
            message = await socket_.read_message()
            if message is None:
                closed_at.append(time.monotonic() - signalled)
                assert socket_.close_code == GOING_AWAY_CODE
                return
            still_open_answered.append(message)

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    watchers = [asyncio.ensure_future(watch(s)) for s in sockets]
    await asyncio.sleep(0.8)
    open_now = [s for s, w in zip(sockets, watchers, strict=True) if not w.done()]
    assert 10 < len(open_now) < 55, len(open_now)  # some gone, most still there
    open_now[-1].write_message("still here")
    await asyncio.wait_for(asyncio.gather(*watchers), 10)
    assert "still here" in still_open_answered
    assert len(closed_at) == 60
    closed_at.sort()
    assert closed_at[0] < 0.5  # the first share at once
    assert 1.5 < closed_at[-1] < 3.5  # spread over about 60 / 30 = 2 s
    assert await asyncio.wait_for(proc.wait(), GRACE + 5) == 0


def test_the_drain_window_and_its_shares() -> None:
    assert drain_window(0, 1000, 10) == 0
    assert drain_window(5000, 0, 10) == 0  # WS_DRAIN_PER_SECOND=0: all at once
    assert drain_window(2000, 1000, 10) == 2.0
    assert drain_window(50_000, 1000, 10) == 5.0  # never more than half the grace
    assert closing_due(10, 0, 0) == 10
    assert closing_due(1, 0, 2.0) == 1  # a lone socket goes at once
    assert closing_due(1000, 0, 2.0) == 25  # 1000 x 0.05 / 2
    assert closing_due(1000, 1.0 - DRAIN_TICK_SECONDS, 2.0) == 500
    assert closing_due(1000, 2.0, 2.0) == 1000
    assert closing_due(1000, 60.0, 2.0) == 1000
    shares = [closing_due(1000, t * DRAIN_TICK_SECONDS, 2.0) for t in range(41)]
    assert shares == sorted(shares) and shares[-1] == 1000
