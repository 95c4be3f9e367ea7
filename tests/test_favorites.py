"""Favorites and shares: idempotent collecting with an exact counter, the caller's collection
by cursor, share counting once per window, and share cards that never leak a post."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from models.community import Post
from models.media import Media
from pawhome.community import favorites
from tests.interactions_support import (
    assert_counters_true,
    favorite_rows,
    follow_row,
    make_post,
    make_user,
    post_row,
)
from tests.media_helpers import worker_variants


@pytest.mark.gen_test(timeout=60)
async def test_favoriting_is_idempotent_and_counted_exactly(api, resources):
    author, fan = await make_user(resources), await make_user(resources)
    post_id = await make_post(resources, author.user_id)
    results = await asyncio.gather(*[favorites.set_favorite(resources, fan.user_id, post_id, True)
                                     for _ in range(20)])
    assert sum(r["changed"] for r in results) == 1
    assert all(r["favorite_count"] == 1 for r in results)
    assert await favorite_rows(resources, post_id) == 1
    dropped = (await api.delete(f"/v1/posts/{post_id}/favorite", token=fan.token)).ok()
    assert dropped == {"favorited": False, "favorite_count": 0, "changed": True}
    assert (await api.delete(f"/v1/posts/{post_id}/favorite",
                             token=fan.token)).ok()["changed"] is False
    await assert_counters_true(resources, post_ids=(post_id,))


@pytest.mark.gen_test(timeout=60)
async def test_my_favorites_page_newest_first_and_drop_posts_i_can_no_longer_see(api,
                                                                                 resources):
    author, fan = await make_user(resources), await make_user(resources)
    post_ids = [await make_post(resources, author.user_id, text=f"帖子{i}") for i in range(4)]
    for post_id in post_ids:
        (await api.post(f"/v1/posts/{post_id}/favorite", token=fan.token)).ok()
    first = (await api.get("/v1/users/me/favorites?limit=2", token=fan.token)).ok()
    assert [i["post_id"] for i in first["items"]] == [post_ids[3], post_ids[2]]
    assert first["items"][0]["title"] == "帖子3" and first["items"][0]["favorite_count"] == 1
    rest = (await api.get(f"/v1/users/me/favorites?limit=2&cursor={first['nextCursor']}",
                          token=fan.token)).ok()
    assert [i["post_id"] for i in rest["items"]] == [post_ids[1], post_ids[0]]
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Post).where(Post.id == post_ids[3])
                              .values(visibility="private"))
    again = (await api.get("/v1/users/me/favorites?limit=10", token=fan.token)).ok()
    assert post_ids[3] not in [i["post_id"] for i in again["items"]]
    assert (await api.get("/v1/users/me/favorites", token=author.token)).ok()["items"] == []


@pytest.mark.gen_test(timeout=60)
async def test_a_share_counts_once_per_window_and_returns_the_card(api, resources):
    author, fan = await make_user(resources, "柯基爸爸"), await make_user(resources)
    async with resources.db.session() as session, session.begin():
        media = Media(owner_id=author.user_id, kind="image", status="ready",
                      storage_key="t/cover.jpg",
                      variants=worker_variants("t/cover/"))
        session.add(media)
        await session.flush()
        media_id = media.id
    post_id = await make_post(resources, author.user_id, text="今天去公园\n玩得很开心",
                              media_ids=[media_id])
    first = (await api.post(f"/v1/posts/{post_id}/share", token=fan.token)).ok()
    assert first["counted"] is True and first["share_count"] == 1
    card = first["card"]
    assert card["post_id"] == post_id and card["title"] == "今天去公园"
    assert card["author"]["nickname"] == "柯基爸爸"
    assert card["cover"]["media_id"] == media_id and card["cover"]["variant"] == "w480.jpg"
    assert card["cover"]["url"].endswith("t/cover/w480.jpg")
    second = (await api.post(f"/v1/posts/{post_id}/share", token=fan.token)).ok()
    assert second["counted"] is False and second["share_count"] == 1
    assert second["card"] == card
    other = await make_user(resources)
    assert (await api.post(f"/v1/posts/{post_id}/share",
                           token=other.token)).ok()["share_count"] == 2
    assert (await post_row(resources, post_id)).share_count == 2
    no_media = await make_post(resources, author.user_id)
    assert (await api.post(f"/v1/posts/{no_media}/share",
                           token=fan.token)).ok()["card"]["cover"] is None


@pytest.mark.gen_test(timeout=60)
async def test_private_and_followers_only_posts_never_give_out_a_card(api, resources):
    author, stranger, follower = [await make_user(resources) for _ in range(3)]
    await follow_row(resources, follower.user_id, author.user_id)
    private = await make_post(resources, author.user_id, visibility="private",
                              text="秘密日记")
    followers_only = await make_post(resources, author.user_id, visibility="followers",
                                     text="只给粉丝看")
    for post_id in (private, followers_only):
        reply = await api.post(f"/v1/posts/{post_id}/share", token=stranger.token)
        reply.error(404)
        assert "秘密" not in reply.body.decode() and "粉丝" not in reply.body.decode()
        (await api.post(f"/v1/posts/{post_id}/favorite", token=stranger.token)).error(404)
        assert (await post_row(resources, post_id)).share_count == 0
    (await api.post(f"/v1/posts/{private}/share", token=follower.token)).error(404)
    card = (await api.post(f"/v1/posts/{followers_only}/share", token=follower.token)).ok()
    assert card["card"]["title"] == "只给粉丝看"
