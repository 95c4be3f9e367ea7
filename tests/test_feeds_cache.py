"""FEED_CACHE_SECONDS=0 turns the first-page cache off instead of breaking the feed."""
import pytest

from pawhome.community import feeds
from pawhome.platform import codec
from tests.interactions_support import make_post, make_user


@pytest.mark.gen_test
async def test_a_zero_cache_time_serves_every_first_page_from_the_database(resources):
    settings = resources.settings.model_copy(update={"feed_cache_seconds": 0})
    await feeds.invalidate_first_pages(resources.cache)
    query = feeds.FeedQuery(limit=5)
    author = await make_user(resources)
    first = codec.loads(await feeds.first_page_bytes(resources.db, resources.cache, settings,
                                                     None, query))
    newest = await make_post(resources, author.user_id, text="no cache")
    second = codec.loads(await feeds.first_page_bytes(resources.db, resources.cache, settings,
                                                      None, query))
    assert second["items"][0]["id"] == newest != (first["items"] or [{}])[0].get("id")
    assert not await resources.cache.redis.exists(
        feeds.first_page_key(resources.cache, "latest", 5))
