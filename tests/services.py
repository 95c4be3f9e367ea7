"""Find or start the real services a test run uses: MariaDB/MySQL and Redis.

URLs come from the environment (TEST_MYSQL_URL, TEST_REDIS_URL), defaulting to the local
services. If one does not answer but its server binary is installed, a private instance is
started on a free port in a temporary directory (and stopped at exit). If neither, the run
stops with a message naming the packages to install.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlparse

DEFAULT_MYSQL = "mysql+aiomysql://root@127.0.0.1:3306/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{host}:{port} did not open within {seconds}s")


class PrivateRedis:
    """A redis-server of our own on a free port (also used by outage tests)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed (package redis-server)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pawhome-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateMariaDB:
    """A mariadbd of our own, initialised in a temp dir, on a free port (`options`: more
    server options, e.g. a server id and a binary log for replication)."""

    def __init__(self, options: tuple[str, ...] = ()) -> None:
        self.options = options
        self.mariadbd = shutil.which("mariadbd") or shutil.which("mysqld") or (
            "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
        self.installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not (self.mariadbd and self.installer):
            raise RuntimeError("mariadbd or mariadb-install-db is not installed "
                               "(package mariadb-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pawhome-mariadb-")
        self.proc: subprocess.Popen | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        return f"mysql+aiomysql://root@127.0.0.1:{self.port}/"

    def start(self) -> PrivateMariaDB:
        data = os.path.join(self.dir, "data")
        if not self._initialised:
            subprocess.run([self.installer, "--no-defaults", f"--datadir={data}",
                            "--auth-root-authentication-method=normal",
                            "--skip-test-db", "--user=root"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._initialised = True
        self.proc = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.dir}/mysqld.sock", "--user=root",
             "--skip-grant-tables", "--innodb-buffer-pool-size=32M",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_520_ci",
             *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port, 60)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def cannot_test(service: str, url: str, env_var: str, error: BaseException,
                package: str) -> str:
    """The message a run stops with when a service is neither running nor startable."""
    return (f"\nThe tests need {service}, and none could be found or started:\n"
            f"  - nothing answers at {url} (set {env_var} to use another server);\n"
            f"  - no private instance could be started: {error}.\n"
            f"Install the server (Debian/Ubuntu: apt-get install {package}), or start one, "
            f"then run `make test` again.\n")


def ensure_redis(url: str) -> str:
    parsed = urlparse(url)
    if port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        return url
    try:
        private = PrivateRedis().start()
    except RuntimeError as error:
        raise SystemExit(cannot_test("Redis", url, "TEST_REDIS_URL", error,
                                     "redis-server")) from error
    atexit.register(private.cleanup)
    return private.url


def ensure_mysql(url: str) -> str:
    parsed = urlparse(url.replace("+aiomysql", ""))
    if port_open(parsed.hostname or "127.0.0.1", parsed.port or 3306):
        return url
    try:
        private = PrivateMariaDB().start()
    except (RuntimeError, subprocess.CalledProcessError) as error:
        raise SystemExit(cannot_test("MariaDB/MySQL", url, "TEST_MYSQL_URL", error,
                                     "mariadb-server")) from error
    atexit.register(private.cleanup)
    return private.url
