"""pawhome/platform/redis_pipeline.py: concurrent callers' commands on one connection, each caller
getting its own reply, against the real Redis."""
from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.exceptions as redis_errors

from pawhome.platform.cache import make_redis
from pawhome.platform.redis_pipeline import Pipeline


@pytest.fixture
def keys(resources, io_loop):
    """keys(n): n fresh keys of this test's namespace, deleted afterwards."""
    made: list[str] = []

    def fresh(n: int) -> list[str]:
        made.extend(resources.cache.key("pipe", uuid.uuid4().hex) for _ in range(n))
        return made[-n:]

    yield fresh
    if made:
        io_loop.run_sync(lambda: resources.cache.redis.delete(*made))


@pytest.fixture
def pipeline(resources, io_loop):
    line = Pipeline(resources.cache.redis)
    yield line
    io_loop.run_sync(line.aclose)


@pytest.mark.gen_test
async def test_concurrent_callers_share_one_connection_and_get_their_own_replies(
        resources, keys, pipeline):
    names = keys(300)
    await resources.cache.redis.mset({name: f"value-{i}".encode()
                                      for i, name in enumerate(names)})
    replies = await asyncio.gather(*(pipeline.execute("GET", name) for name in names))
    assert replies == [f"value-{i}".encode() for i in range(len(names))]
    ids = await asyncio.gather(*(pipeline.execute("CLIENT", "ID") for _ in range(50)))
    assert len(set(ids)) == 1  # one connection carried all of them


@pytest.mark.gen_test
async def test_commands_sent_together_get_their_replies_in_order(resources, keys, pipeline):
    a, b, h = keys(3)
    await resources.cache.redis.mset({a: b"A", b: b"B"})
    await resources.cache.redis.hset(h, mapping={"epoch": "e1", "seq": 7})
    replies = await pipeline.execute_many(("MGET", a, b, "missing"),
                                          ("HMGET", h, "epoch", "seq"), ("GET", b))
    assert replies == [[b"A", b"B", None], [b"e1", b"7"], b"B"]
    with pytest.raises(redis_errors.ResponseError):
        await pipeline.execute_many(("GET", a), ("INCR", a))
    assert await pipeline.execute_many(("GET", a)) == [b"A"]  # still in order


@pytest.mark.gen_test
async def test_an_error_reply_fails_only_its_own_command(resources, keys, pipeline):
    a, b = keys(2)
    await resources.cache.redis.mset({a: b"A", b: b"B"})
    replies = await asyncio.gather(
        pipeline.execute("GET", a), pipeline.execute("EVALSHA", "0" * 40, 0),
        pipeline.execute("INCR", a), pipeline.execute("GET", b), return_exceptions=True)
    assert replies[0] == b"A" and replies[3] == b"B"
    assert isinstance(replies[1], redis_errors.NoScriptError)
    assert isinstance(replies[2], redis_errors.ResponseError)  # "not an integer"
    assert await pipeline.execute("GET", b) == b"B"  # the line is still in order


@pytest.mark.gen_test
async def test_a_caller_that_goes_away_does_not_shift_the_others_replies(
        resources, keys, pipeline):
    a, b = keys(2)
    await resources.cache.redis.mset({a: b"A", b: b"B"})
    await pipeline.execute("PING")
    gone = asyncio.ensure_future(pipeline.execute("GET", a))
    await asyncio.sleep(0)  # its command is queued on the line
    gone.cancel()
    assert await pipeline.execute("GET", b) == b"B"
    with pytest.raises(asyncio.CancelledError):
        await gone


@pytest.mark.gen_test
async def test_a_killed_connection_is_replaced_and_its_commands_retried_once(
        resources, keys, pipeline):
    (a,) = keys(1)
    redis = resources.cache.redis
    await redis.set(a, b"A")
    first_id = await pipeline.execute("CLIENT", "ID")
    # Killed while idle (e.g. Redis restarted): the next command is retried on a new
    # connection instead of failing the request.
    await redis.execute_command("CLIENT", "KILL", "ID", first_id)
    assert await pipeline.execute("GET", a) == b"A"
    second_id = await pipeline.execute("CLIENT", "ID")
    assert second_id != first_id
    # Killed with commands in flight (its own kill among them): the commands behind the
    # kill lose their connection and are retried once on a new one.
    replies = await asyncio.gather(
        pipeline.execute("CLIENT", "KILL", "ID", second_id, "SKIPME", "no"),
        *(pipeline.execute("GET", a) for _ in range(5)))
    assert replies[0] in (0, 1) and replies[1:] == [b"A"] * 5
    assert await pipeline.execute("CLIENT", "ID") not in (first_id, second_id)
    assert await pipeline.execute("GET", a) == b"A"


def test_a_pipeline_moves_with_its_client_to_a_new_event_loop(settings):
    redis = make_redis(settings)
    pipeline = Pipeline(redis)

    async def ping() -> bytes:
        return await pipeline.execute("PING")

    try:
        assert asyncio.run(ping()) == b"PONG"
        assert asyncio.run(ping()) == b"PONG"  # the first loop's line is left behind
    finally:
        async def close() -> None:
            await pipeline.aclose()
            await redis.aclose()
        asyncio.run(close())


@pytest.mark.gen_test
async def test_redis_gone_is_a_connection_error_not_a_hang(settings):
    from settings import Settings

    unreachable = Settings(**{**settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"})
    redis = make_redis(unreachable)
    pipeline = Pipeline(redis)
    try:
        with pytest.raises(redis_errors.ConnectionError):
            await asyncio.wait_for(pipeline.execute("PING"), 10)
    finally:
        await pipeline.aclose()
        await redis.aclose()
