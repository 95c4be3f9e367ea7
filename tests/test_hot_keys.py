"""pawhome/platform/hot_keys.py: the coalescer runs one refresh at a time per key and
exactly once more after the calls that came in meanwhile; batches per key take what came in during the previous one, answer each
caller its own outcome, and a failed write fails its whole batch only."""
from __future__ import annotations

import asyncio

import pytest

from pawhome.platform.hot_keys import Coalescer, KeyedBatches


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


@pytest.mark.gen_test
async def test_calls_during_a_batch_go_together_into_the_next_and_each_gets_its_own_answer():
    written: list[tuple[str, list[int]]] = []
    writing: dict[str, int] = {"a": 0, "b": 0}
    release = asyncio.Event()

    async def write(key, items: list[int]) -> list[int | BaseException]:
        writing[key] += 1
        assert writing[key] == 1  # one batch of a key at a time
        written.append((key, list(items)))
        if len(written) == 1:
            await release.wait()
        writing[key] -= 1
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in items]

    batches: KeyedBatches[int, int] = KeyedBatches(write, limit=4)
    first = asyncio.ensure_future(batches.submit("a", 0))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(batches.submit("a", n)) for n in range(1, 7)]
    other = asyncio.ensure_future(batches.submit("b", 8))
    assert await other == 80  # b does not wait for a's batch
    assert not any(call.done() for call in [first, *later])  # nobody before their write
    release.set()
    results = await asyncio.gather(first, *later, return_exceptions=True)
    assert written == [("a", [0]), ("b", [8]), ("a", [1, 2, 3, 4]), ("a", [5, 6])]
    assert [r if isinstance(r, int) else str(r) for r in results] == \
        [0, "odd 1", 20, "odd 3", 40, "odd 5", 60]
    assert len(batches) == 0 and batches.batches == 4


@pytest.mark.gen_test
async def test_a_failed_batch_fails_its_callers_only_and_a_gone_caller_is_still_written():
    written: list[list[int]] = []
    release = asyncio.Event()

    async def write(_key, items: list[int]) -> list[int | BaseException]:
        written.append(list(items))
        if len(written) == 1:
            await release.wait()
        if 13 in items:
            raise ConnectionError("database went away")
        return list(items)

    batches: KeyedBatches[int, int] = KeyedBatches(write)
    first = asyncio.ensure_future(batches.submit("k", 1))
    await asyncio.sleep(0)
    doomed = [asyncio.ensure_future(batches.submit("k", n)) for n in (12, 13)]
    gone = asyncio.ensure_future(batches.submit("k", 14))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == 1
    results = await asyncio.gather(*doomed, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert written == [[1], [12, 13, 14]]  # the cancelled caller's item was written too
    assert await batches.submit("k", 2) == 2  # the key starts afresh
    assert len(batches) == 0
