"""supervisor/supervisord.conf, run for real: every program RUNNING, gateways answering on
consecutive ports, Flower listing the workers, `restart gateway:*`, and nothing left behind.

The config is used unchanged, from a scratch root whose entries are symlinks to this checkout
(so its socket, pid file and logs, all relative to the config file, stay out of the repo and
away from a supervisord a developer may be running).
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = {"gateway:gateway-0", "gateway:gateway-1", "workers:workers-default",
            "workers:workers-media", "workers:workers-index", "workers:workers-payments",
            "workers:workers-ai",
            "beat", "flower"}


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _consecutive_free_ports(count: int) -> int:
    """`count` consecutive ports that bind now, chosen below the kernel's ephemeral range
    (32768+ here) so an outgoing connection cannot take one before the gateways start."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError("no consecutive free ports")


def _scratch_root() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="pawhome-supervisor-"))
    for entry in ROOT.iterdir():
        if entry.name not in ("supervisor", "var", ".git"):
            (scratch / entry.name).symlink_to(entry)
    (scratch / "supervisor").mkdir()
    (scratch / "supervisor" / "run").mkdir()
    (scratch / "supervisor" / "supervisord.conf").symlink_to(ROOT / "supervisor" / "supervisord.conf")
    (scratch / "var" / "log").mkdir(parents=True)
    return scratch


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def _processes_under(path: str) -> list[int]:
    """PIDs whose command line mentions `path` (our supervisord and its children)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if path in cmdline:
            found.append(int(pid))
    return found


@pytest.fixture
def supervised():
    scratch = _scratch_root()
    conf = scratch / "supervisor" / "supervisord.conf"
    base_port, flower_port = _consecutive_free_ports(2), free_port()
    env = {**os.environ, "GATEWAY_BASE_PORT": str(base_port), "FLOWER_PORT": str(flower_port),
           "WORKER_CONCURRENCY": "1", "LOG_LEVEL": "INFO",
           "BEAT_SCHEDULE_FILE": str(scratch / "var" / "celerybeat-schedule")}
    bin_dir = ROOT / ".venv" / "bin"
    supervisord = subprocess.Popen([str(bin_dir / "supervisord"), "-n", "-c", str(conf)],
                                   env=env, cwd=scratch, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / "supervisorctl"), "-c", str(conf), *args],
                              env=env, capture_output=True, text=True, timeout=60)

    try:
        yield ctl, base_port, flower_port, scratch
    finally:
        ctl("shutdown")
        try:
            supervisord.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(supervisord.pid, signal.SIGKILL)
            supervisord.wait(10)
        leftovers = _processes_under(str(scratch))
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)
        assert not leftovers, f"processes left running after shutdown: {leftovers}"


def _status(ctl) -> dict[str, tuple[str, str]]:
    out = ctl("status").stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            rows[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return rows


def _all_running(ctl):
    rows = _status(ctl)
    return rows if set(rows) == PROGRAMS and all(s == "RUNNING" for s, _ in rows.values()) \
        else None


def _healthz(port: int) -> bool:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and reply.json()["data"] == {"status": "ok"}


def _flower_workers(port: int) -> set[str]:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/workers?json=1", timeout=3)
        reply.raise_for_status()
    except httpx.HTTPError:
        return set()
    return {w["hostname"] for w in reply.json()["data"] if w.get("status", True)}


@pytest.mark.timeout(150)
def test_supervisor_runs_gateways_workers_beat_and_flower(supervised):
    ctl, base_port, flower_port, _ = supervised
    rows = _wait(lambda: _all_running(ctl), 60, "every program RUNNING")
    assert set(rows) == PROGRAMS
    for port in (base_port, base_port + 1):
        _wait(lambda port=port: _healthz(port), 90, f"gateway on {port}")

    prefix = os.environ["TASK_QUEUE_PREFIX"]
    expected = {f"{prefix}{group}" for group in ("default-notify", "media",
                                                  "moderation-search")}
    workers = _wait(lambda: _flower_workers(flower_port) if expected <= {
        h.split("@")[0] for h in _flower_workers(flower_port)} else None, 90,
        "Flower to list the three worker groups")
    assert expected <= {h.split("@")[0] for h in workers}

    pids_before = {name: info for name, (state, info) in _status(ctl).items()
                   if name.startswith("gateway:")}
    restarted = ctl("restart", "gateway:*")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    rows = _wait(lambda: _all_running(ctl), 60, "gateways RUNNING again")
    for name, before in pids_before.items():
        assert rows[name][1].split(",")[0] != before.split(",")[0], "gateway was not restarted"
    for port in (base_port, base_port + 1):
        _wait(lambda port=port: _healthz(port), 90, f"gateway on {port} after restart")
