"""pawhome/platform/hot_keys.py: one holder per key at a time (other keys run beside),
entries forgotten when nobody holds or waits, a failing holder gives its turn back; the
coalescer runs one refresh at a time per key and exactly once more after the calls that
came in meanwhile."""
from __future__ import annotations

import asyncio

import pytest

from pawhome.platform.hot_keys import Coalescer, KeyedLock


@pytest.mark.gen_test
async def test_holders_of_one_key_take_turns_and_other_keys_run_beside():
    locks = KeyedLock()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    order: list[tuple[str, int]] = []

    async def hold(key: str, n: int) -> None:
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            order.append((key, n))
            await asyncio.sleep(0.002)
            inside[key] -= 1

    await asyncio.gather(*[hold(key, n) for n in range(20) for key in ("a", "b")])
    assert most == {"a": 1, "b": 1}
    assert [n for key, n in order if key == "a"] == list(range(20))  # first come, first served
    assert order[:2] == [("a", 0), ("b", 0)]  # b did not wait for a's queue
    assert len(locks) == 0


@pytest.mark.gen_test
async def test_a_failing_holder_gives_its_turn_back():
    locks = KeyedLock()
    with pytest.raises(RuntimeError):
        async with locks.hold("k"):
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with locks.hold("k"):
        assert len(locks) == 1


@pytest.mark.gen_test
async def test_calls_during_a_refresh_make_exactly_one_more():
    coalescer = Coalescer()
    seen: list[int] = []
    state = {"value": 0}
    release = asyncio.Event()

    async def refresh() -> None:
        seen.append(state["value"])
        if len(seen) == 1:
            await release.wait()

    first = asyncio.ensure_future(coalescer.run("post:1", refresh))
    await asyncio.sleep(0)
    for value in range(1, 6):  # five changes while the first refresh runs
        state["value"] = value
        await coalescer.run("post:1", refresh)  # returns at once: left to the running one
    assert seen == [0] and len(coalescer) == 1
    release.set()
    await first
    assert seen == [0, 5]  # one more round, after the last change
    assert len(coalescer) == 0
    await coalescer.run("post:1", refresh)
    assert seen == [0, 5, 5]
