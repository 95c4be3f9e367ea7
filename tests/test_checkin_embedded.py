"""The check-in and the leaderboards as a new user meets them in `make run` (embedded mode:
SQLite, the in-process store and tasks): check in, a second tap refused, the calendar and the
streak, the reminder switched on, and their rank on the points board once the in-process
relay ran the leaderboard task the check-in queued."""
from __future__ import annotations

import subprocess
import sys

import httpx

from tests.test_embedded import ROOT, embedded  # noqa: F401  (fixture)
from tests.test_growth_embedded import Caller
from tests.test_mall_catalogue_embedded import _until as until


def refused(caller: Caller, method: str, path: str) -> int:
    """The business code of a refused request."""
    reply = httpx.request(method, caller.gateway.base + path, timeout=15,
                          headers={"Authorization": f"Bearer {caller.token}"})
    return reply.json()["code"]


def test_a_new_user_checks_in_and_sees_their_rank_in_make_run(embedded):
    player = Caller(embedded, "checkin-player")
    done = player("POST", "/v1/checkin")
    assert (done["streak"], done["points"]) == (1, 10)
    assert refused(player, "POST", "/v1/checkin") == 40976
    status = player("GET", "/v1/checkin/status")
    assert status["checked_in_today"] and status["streak"] == 1
    assert status["rewards_preview"][5]["bonus"] == 30  # the 7th day in a row
    assert player("PUT", "/v1/checkin/reminder", json={"enabled": True, "hour": 21}) == \
        {"enabled": True, "hour": 21}
    board = until(lambda: (lambda b: b if b["my_rank"] else None)(
        player("GET", "/v1/leaderboards/user_points")), "the check-in on the points board")
    assert board["me"]["score"] == 10 and board["me"]["user"]["nickname"] is not None
    week = player("GET", "/v1/leaderboards/user_points", params={"period": "week"})
    assert week["my_rank"] is not None
    assert player("GET", "/v1/leaderboards/friends")["items"] == []  # no pet yet
    assert refused(player, "POST", "/v1/admin/leaderboards/user_points/rebuild") // 100 \
        == 403  # admins only


def test_a_demo_buyer_checks_in_the_second_day_in_a_row_in_make_run(embedded):
    subprocess.run([sys.executable, "-m", "pawhome.demo"], cwd=ROOT, env=embedded.env,
                   check=True, capture_output=True, timeout=180)
    buyer = Caller(embedded, "demo-user-1")
    assert buyer("GET", "/v1/checkin/status")["streak"] == 1  # yesterday, from the demo data
    done = buyer("POST", "/v1/checkin")
    assert (done["streak"], done["points"]) == (2, 10)
    status = buyer("GET", "/v1/checkin/status")
    assert status["streak"] == 2 and status["checked_in_today"]
    board = until(lambda: (lambda b: b if b["my_rank"] else None)(
        buyer("GET", "/v1/leaderboards/user_points")), "the demo buyer on the points board")
    assert board["me"]["score"] >= 20
