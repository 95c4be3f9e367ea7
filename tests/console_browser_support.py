"""The browser tests' harness: Debian's chromium driven by Playwright (pytest-playwright's
session-scoped browser, one per test worker), a real gateway process (run_gateway.py on the
test database and Redis) serving the console, and screenshots under var/screenshots/.

Playwright cannot download its own browser here: it launches the system chromium
(/usr/bin/chromium, `apt-get install chromium`; .ci/run installs it). Without it the browser
tests skip, naming the package.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.realtime_helpers import GatewayProcess
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's notes say: headless, no sandbox as root, and nothing that reaches out to
# Google's services (the network is closed; those calls would only fail, slowly).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install chromium)")


def start_console_gateway() -> GatewayProcess:
    """A gateway process (run_gateway.py, development mode, the test database and Redis)
    serving the console on a port of its own; waits for /healthz without an IOLoop."""
    port = free_port()
    log_file = tempfile.TemporaryFile()
    # Its own address as the public one: upload URLs (local media storage) and media URLs
    # point back at it, as they do in a deployment.
    env = {**os.environ, "MODE": "development", "LOG_LEVEL": "WARNING",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "run_gateway.py", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log_file, stderr=subprocess.STDOUT)
    gateway = GatewayProcess(proc, port, log_file)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited:\n{gateway.log()}")
        try:
            with urllib.request.urlopen(f"{gateway.base_url}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return gateway
        except OSError:
            time.sleep(0.1)
    gateway.stop()
    raise AssertionError(f"gateway did not come up:\n{gateway.log()}")


def screenshot(page, name: str) -> Path:
    """Save the page as var/screenshots/<name>.png (git-ignored; CI keeps it as an artefact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_page(page, base_url: str, login: str, password: str) -> None:
    """Open the console and sign in through its form; wait for the menu."""
    page.goto(f"{base_url}/console")
    page.get_by_label("登录名").fill(login)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.locator("#nav a").first.wait_for()


class Backend:
    """Test data for the browser tests, made off the browser's thread.

    Playwright's sync API keeps its own event loop running on the test's thread, so the
    suite's IOLoop fixtures cannot run there. This runs an event loop of its own on a
    thread (domain calls: staff accounts, a post held for review) and talks to the gateway
    process over HTTP like any other client (dev-login, the admin API)."""

    def __init__(self, base_url: str) -> None:
        import asyncio
        import threading

        import httpx

        from pawhome.platform.resources import Resources
        from settings import Settings

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> Resources:
            return Resources(Settings())

        self.resources = self.run(make)
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def run(self, function, *args, **kwargs):
        future = self._asyncio.run_coroutine_threadsafe(function(*args, **kwargs), self.loop)
        return future.result(60)

    def close(self) -> None:
        self.http.close()
        self.run(self.resources.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- over HTTP, as a script would ----------------------------------------------------------
    def call(self, method: str, path: str, token: str | None = None, json=None,
             headers: dict | None = None, expect: int = 200):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        reply = self.http.request(method, path, json=json, headers=hdrs)
        assert reply.status_code == expect, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json().get("data")

    def login(self, role: str = "user", openid: str | None = None) -> dict:
        """A dev-login: {user_id, access_token, ...} of a new user with `role`."""
        openid = openid or "b-" + uuid.uuid4().hex[:20]
        return self.call("POST", "/v1/auth/dev-login", json={"openid": openid, "role": role})

    # -- domain calls ---------------------------------------------------------------------------
    def make_staff(self, role: str = "admin", user_id: int | None = None) -> dict:
        from pawhome.console import staff as staff_accounts
        from tests.console_support import PASSWORD

        if user_id is None:
            user_id = self.login(role)["user_id"]
        return self.run(staff_accounts.create_staff, self.resources,
                        login=f"{role}-{uuid.uuid4().hex[:8]}", password=PASSWORD,
                        user_id=user_id)

    def held_post(self, text: str) -> int:
        """A post by a new user, held for an admin's review."""
        from pawhome.community import posts

        author = self.login()
        post = self.call("POST", "/v1/posts", token=author["access_token"],
                         json={"text": text}, expect=201)

        async def hold() -> None:
            async with self.resources.db.session() as session, session.begin():
                await posts.set_status(session, post["id"], "hidden", "待人工复核")

        self.run(hold)
        return int(post["id"])

    def clear_rate_limits(self) -> None:
        async def clear() -> None:
            redis = self.resources.cache.redis
            keys = [k async for k in redis.scan_iter(match=self.resources.cache.key("rl", "*"),
                                                     count=500)]
            if keys:
                await redis.delete(*keys)

        self.run(clear)


def paid_order(backend: Backend, *, stock: int = 10) -> dict:
    """A shop (a merchant with express delivery), a product with one SKU, and a buyer's paid
    express order of 2 of it: {merchant_id, sku_id, product_id, order}."""
    from pawhome.mall import orders
    from tests.mall_support import make_address, make_member, make_product, make_shop

    async def make() -> dict:
        resources = backend.resources
        merchant, _ = await make_shop(resources, express_fee=0, free_over=None)
        product_id, (sku,) = await make_product(resources, merchant.user_id,
                                                [{"price": 1990, "stock": stock}],
                                                name="冻干鸡胸肉 " + uuid.uuid4().hex[:4])
        buyer = await make_member(resources)
        address_id = await make_address(resources, buyer.user_id)
        return {"merchant_id": merchant.user_id, "product_id": product_id, "sku_id": sku,
                "buyer_token": buyer.token, "address_id": address_id}

    made = backend.run(make)
    placed = backend.call("POST", "/v1/orders", token=made["buyer_token"], expect=201, json={
        "items": [{"sku_id": made["sku_id"], "quantity": 2}], "address_id": made["address_id"]})
    order = placed["orders"][0]

    async def pay() -> None:
        async with backend.resources.db.session() as session, session.begin():
            assert await orders.mark_paid(session, order["id"], order["payable_amount"])

    backend.run(pay)
    return {**made, "order": order}


def feedback_ticket(backend: Backend, text: str) -> tuple[int, str]:
    """(ticket id, the user's token) of a new user's feedback."""
    user = backend.login()
    ticket = backend.call("POST", "/v1/feedback", token=user["access_token"], expect=201,
                          json={"category": "suggestion", "text": text, "contact": "13800138000",
                                "app_version": "1.4.2", "device": {"model": "iPhone 15"}})
    return int(ticket["id"]), user["access_token"]
