"""Work a task commits leaves the worker at once: the worker relays its own outbox rows
after each task instead of waiting for a gateway's next poll."""
import asyncio
import time

import pytest

from models.community import Post
from pawhome.moderation import reviews as moderation
from pawhome.platform import streams
from pawhome.platform.outbox import OutboxRelay
from tests.interactions_support import make_user


@pytest.mark.gen_test(timeout=60)
async def test_an_event_a_task_commits_reaches_the_stream_with_no_gateway_relay(
        resources, celery_worker_process, wechat):
    author = await make_user(resources)  # logged in just now: WeChat's text check applies
    async with resources.db.session() as session, session.begin():
        post = Post(author_id=author.user_id, text="今天遛狗", status="pending",
                    media_ids=[], pet_types=[], pet_ids=[])
        session.add(post)
        await session.flush()
        post_id = post.id
        await moderation.review_post_later(session, post_id)
    epoch, start = await streams.head(resources.cache, author.user_id)
    # Hand the review task to the broker once; no relay runs after this in this process.
    assert await OutboxRelay(resources).relay_once() >= 1
    deadline = time.monotonic() + 20
    while True:
        replay = await streams.read_since(resources.cache, author.user_id, epoch, start)
        statuses = [e for _, e in replay.events if e["type"] == "post.status"]
        if statuses:
            break
        assert time.monotonic() < deadline, "the task's event never left the worker"
        await asyncio.sleep(0.05)
    assert statuses[0]["data"]["post_id"] == post_id
    assert statuses[0]["data"]["status"] == "visible"
