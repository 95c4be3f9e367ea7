"""Helpers for real-time tests: real gateway processes, WebSocket clients, raw sockets.

    gw = await start_gateway(env={"WS_MAX_CONNECTIONS": "2"})   # run_gateway.py, /healthz up
    client = await ws_connect(gw, token)                          # wsclient.Client after hello
    gw.kill()                                                     # SIGKILL (a crash)

Gateways inherit the test run's environment (database, Redis prefix, JWT secret), so a token
issued by the in-process `api` fixture is valid on every process. The `gateways` fixture
stops whatever a test started.
"""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

import wsclient
from pawhome.platform import codec
from pawhome.platform.cache import Cache
from settings import Settings
from tests.fixtures_worker import wait_until
from tests.services import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


class GatewayProcess:
    def __init__(self, proc: subprocess.Popen, port: int, log_file) -> None:
        self.proc = proc
        self.port = port
        self.log_file = log_file

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def kill(self) -> None:
        """SIGKILL: the process dies holding its sockets (a crash, no goodbye)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")[-5000:]

    def log_records(self, min_level: str = "DEBUG") -> list[dict]:
        """Every JSON log record the process wrote at `min_level` or above."""
        levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        wanted = set(levels[levels.index(min_level):])
        self.log_file.seek(0)
        records = []
        for line in self.log_file.read().decode("utf-8", "replace").splitlines():
            if line.startswith("{"):
                record = codec.loads(line)
                if record.get("level") in wanted:
                    records.append(record)
        return records


async def start_gateway(port: int | None = None, env: dict[str, str] | None = None,
                        timeout: float = 30.0) -> GatewayProcess:
    """Launch run_gateway.py (development mode, the test env plus `env`); wait for /healthz."""
    port = port or free_port()
    log_file = tempfile.TemporaryFile()
    full_env = {**os.environ, "MODE": "development", **(env or {})}
    proc = subprocess.Popen([sys.executable, "run_gateway.py", "--port", str(port)], cwd=ROOT,
                            env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
    gateway = GatewayProcess(proc, port, log_file)
    client = AsyncHTTPClient()

    async def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited ({proc.returncode}):\n{gateway.log()}")
        try:
            response = await client.fetch(f"{gateway.base_url}/healthz", raise_error=False,
                                          request_timeout=2)
        except OSError:
            return False
        return response.code == 200

    await wait_until(healthy, timeout=timeout, interval=0.1, what="gateway /healthz")
    return gateway


@pytest.fixture
def gateways(io_loop):
    """`await gateways.start(env=...)`; every gateway started is stopped after the test."""
    started: list[GatewayProcess] = []

    class Starter:
        async def start(self, port: int | None = None,
                        env: dict[str, str] | None = None) -> GatewayProcess:
            gateway = await start_gateway(port, env)
            started.append(gateway)
            return gateway

    yield Starter()
    for gateway in started:
        gateway.stop()


async def ws_connect(gateway: GatewayProcess, token: str, **options: Any) -> wsclient.Client:
    return await wsclient.connect(gateway.ws_url, token, **options)


async def metric_value(gateway: GatewayProcess, name: str, labels: str = "") -> float:
    """One sample of a gateway's /metrics (0 when absent), e.g. ("pawhome_ws_closes_total",
    'code="4408"')."""
    response = await AsyncHTTPClient().fetch(f"{gateway.base_url}/metrics")
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in response.body.decode().splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class RawSocket:
    """A WebSocket at the byte level: completes the handshake, then reads only when told —
    a client that stops reading, or sends what a library would refuse to."""

    def __init__(self, port: int, token: str, recv_buffer: int = 4096) -> None:
        self.port = port
        self.token = token
        self.recv_buffer = recv_buffer
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        sock = socket.socket()
        # A small receive window, so the kernel cannot absorb what the server sends.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        # A small stream limit too: asyncio's transport reads ahead until its buffer holds
        # twice the limit, so a large one would quietly drain the server for us.
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write((f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {self.token}\r\n\r\n").encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        _opcode, payload = await asyncio.wait_for(self.read_frame(), 10)
        self.hello = codec.loads(payload)  # sent once the user's channel is subscribed
        assert self.hello["type"] == "hello", self.hello

    async def read_frame(self) -> tuple[int, bytes]:
        assert self.reader is not None
        b1, b2 = await self.reader.readexactly(2)
        length = b2 & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b1 & 0x0F, await self.reader.readexactly(length)

    async def read_until_close(self, timeout: float = 20.0) -> int | None:
        """Read (and drop) frames until the close frame; returns its code."""
        async def scan() -> int | None:
            while True:
                opcode, payload = await self.read_frame()
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        return await asyncio.wait_for(scan(), timeout)

    def send_frame(self, payload: bytes, opcode: int = 0x1) -> None:
        assert self.writer is not None
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_json(self, frame: dict) -> None:
        self.send_frame(codec.dumps(frame))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@pytest.fixture
def private_redis(io_loop):
    """A Redis server of the test's own (to stop, freeze and restart) and a Cache on it."""
    server = PrivateRedis().start()
    cache = Cache(Settings(redis_url=server.url))
    yield server, cache
    io_loop.run_sync(cache.close)
    server.cleanup()
