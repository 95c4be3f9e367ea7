"""Profile changes reach the other domains: blocks end follows, profile edits re-index."""
import asyncio
import time
import uuid

import pytest


@pytest.mark.gen_test
async def test_blocking_ends_the_follows_between_two_users_and_their_counters(api):
    alice, bob = await api.login(), await api.login()
    (await api.post(f"/v1/users/{bob.user_id}/follow", token=alice.token)).ok()
    (await api.post(f"/v1/users/{alice.user_id}/follow", token=bob.token)).ok()
    assert (await api.get(f"/v1/users/{bob.user_id}/stats", token=bob.token)).ok()[
        "followers"] == 1
    (await api.post("/v1/users/me/blocks", json={"user_id": alice.user_id},
                    token=bob.token)).ok()
    bob_stats = (await api.get(f"/v1/users/{bob.user_id}/stats", token=bob.token)).ok()
    assert bob_stats["followers"] == 0 and bob_stats["following"] == 0
    following = (await api.get(f"/v1/users/{alice.user_id}/following",
                               token=alice.token)).ok()["items"]
    assert bob.user_id not in [u["id"] for u in following]


@pytest.mark.gen_test(timeout=60)
async def test_a_new_nickname_becomes_searchable_through_the_worker(api, celery_worker_process):
    me, searcher = await api.login(), await api.login()
    name = "豆豆" + uuid.uuid4().hex[:6]
    (await api.put("/v1/users/me", json={"nickname": name}, token=me.token)).ok()
    deadline = time.monotonic() + 20
    while True:
        found = (await api.get(f"/v1/search/users?q={name}", token=searcher.token)).ok()
        if me.user_id in [u["id"] for u in found["items"]]:
            break
        assert time.monotonic() < deadline, "the renamed user never became searchable"
        await asyncio.sleep(0.1)
