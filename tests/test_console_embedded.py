"""The console in `make run`'s embedded mode: the start-up banner names the console and
gives the demo admin and merchant a new password on every start; the demo data leaves the
moderation queue with work to show. Other modes print no account."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.test_embedded import ROOT, EmbeddedGateway

pytestmark = pytest.mark.timeout(180)


def banner_logins(gateway: EmbeddedGateway) -> dict[str, str]:
    text = gateway.stdout_path.read_text(encoding="utf-8")
    assert f"console:  {gateway.base}/console" in text
    return dict(re.findall(r"^    \S+: (admin|merchant) / (\S+)$", text, re.MULTILINE))


def sign_in(gateway: EmbeddedGateway, login: str, password: str) -> httpx.Response:
    return httpx.post(gateway.base + "/v1/console/sessions", timeout=10,
                      json={"login": login, "password": password})


def upload_an_image(gateway: EmbeddedGateway, cookie: dict, csrf: str) -> None:
    """The console's upload flow (console/assets/upload.js) on `make run`: the presigned URL
    is the gateway's own address (no PUBLIC_BASE_URL given), and the in-process media task
    makes the image ready."""
    from tests.media_helpers import jpeg_bytes

    image = jpeg_bytes(640, 480)
    started = httpx.post(gateway.base + "/v1/media", cookies=cookie, timeout=10,
                         headers={"X-CSRF-Token": csrf},
                         json={"kind": "image", "size": len(image),
                               "content_type": "image/jpeg"}).json()["data"]
    assert started["upload_url"].startswith(gateway.base + "/v1/media/upload/")
    put = httpx.put(started["upload_url"], content=image, headers=started["headers"],
                    timeout=10)
    assert put.status_code == 200, put.text
    media_id = started["media_id"]
    done = httpx.post(f"{gateway.base}/v1/media/{media_id}/complete", cookies=cookie,
                      headers={"X-CSRF-Token": csrf}, timeout=10)
    assert done.status_code == 200, done.text
    deadline = time.monotonic() + 30
    while True:
        media = httpx.get(f"{gateway.base}/v1/media/{media_id}", cookies=cookie,
                          timeout=10).json()["data"]
        if media["status"] == "ready" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert media["status"] == "ready", media
    assert all(v["url"].startswith(gateway.base) for v in media["variants"].values())


def test_make_run_prints_the_console_and_fresh_demo_passwords(tmp_path):
    gateway = EmbeddedGateway(tmp_path)
    gateway.migrate()
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=gateway.env,
                   check=True, capture_output=True, timeout=120)
    gateway.start()
    try:
        first = banner_logins(gateway)
        assert set(first) == {"admin", "merchant"}
        reply = sign_in(gateway, "admin", first["admin"])
        assert reply.status_code == 201, reply.text
        cookie = {"pawhome_console": reply.cookies["pawhome_console"]}
        queue = httpx.get(gateway.base + "/v1/admin/moderation?kind=post&state=hidden",
                          cookies=cookie, timeout=10).json()["data"]
        assert queue["total"] >= 3
        assert any("<script>" in item["text"] for item in queue["items"])
        reported = httpx.get(gateway.base + "/v1/admin/moderation?kind=post&state=reported",
                             cookies=cookie, timeout=10).json()["data"]
        assert reported["total"] >= 1
        merchant = sign_in(gateway, "merchant", first["merchant"])
        assert merchant.status_code == 201 and merchant.json()["data"]["staff"]["role"] == \
            "merchant"
        shop = {"pawhome_console": merchant.cookies["pawhome_console"]}
        # Both dashboards on SQLite (their per-day SQL is the embedded dialect's too).
        for path, who in (("/v1/admin/dashboard", cookie), ("/v1/merchant/dashboard", shop)):
            reply = httpx.get(gateway.base + path, cookies=who, timeout=10)
            assert reply.status_code == 200, reply.text
            assert len(reply.json()["data"]["days"]) >= 7
        upload_an_image(gateway, shop, merchant.json()["data"]["csrf_token"])
    finally:
        gateway.stop()
    gateway.stdout_path.write_text("")
    gateway.start()
    try:
        second = banner_logins(gateway)
        assert second["admin"] != first["admin"]
        assert sign_in(gateway, "admin", first["admin"]).status_code == 401
        assert sign_in(gateway, "admin", second["admin"]).status_code == 201
    finally:
        gateway.stop()
