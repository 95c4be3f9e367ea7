"""The console in `make run`'s embedded mode: the start-up banner names the console and
gives the demo admin and merchant a new password on every start; the demo data leaves the
moderation queue with work to show. Other modes print no account."""
from __future__ import annotations

import re
import subprocess
import sys

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
