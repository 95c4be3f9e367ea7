"""Search in embedded mode: the same encoded tokens through SQLite FTS5 (search_fts), kept in
step with search_documents, on a temporary SQLite database migrated to head."""
from __future__ import annotations

import types
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from models.base import utcnow
from models.community import Post, PostTopic, SearchDocument, Topic
from models.users import User, UserBlock
from pawhome.community import post_search
from pawhome.identity import user_search
from pawhome.platform import migrate
from pawhome.platform.db import Database
from pawhome.search import index as search
from settings import Settings


@pytest.fixture
def sqlite_resources(tmp_path, io_loop):
    url = f"sqlite+aiosqlite:///{tmp_path / 'search.db'}"
    # Alembic drives its async engine with asyncio.run: on another thread, so this test's
    # IOLoop stays the current loop here.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(migrate.upgrade, url).result()
    settings = Settings(database_url=url, redis_url="memory://search-sqlite")
    db = Database(settings)
    yield types.SimpleNamespace(db=db, settings=settings)
    io_loop.run_sync(db.close)


async def add_user(res, nickname: str = "", bio: str = "", status: str = "active") -> int:
    async with res.db.session() as session, session.begin():
        user = User(nickname=nickname, bio=bio, status=status)
        session.add(user)
        await session.flush()
        return user.id


async def add_post(res, author_id: int, body: str, topics=(), **fields) -> int:
    async with res.db.session() as session, session.begin():
        post = Post(author_id=author_id, text=body, status=fields.pop("status", "visible"),
                    visibility=fields.pop("visibility", "public"), **fields)
        session.add(post)
        await session.flush()
        for name in topics:
            topic = Topic(name=name)
            session.add(topic)
            await session.flush()
            session.add(PostTopic(post_id=post.id, topic_id=topic.id))
        post_id = post.id
    await search.index_document(res, "post", post_id)
    return post_id


async def find(res, q: str, viewer_id=None, **filters) -> list[int]:
    async with res.db.session() as session:
        items, total = await post_search.search_posts(
            session, res.settings, viewer_id, search.parse_query(res.settings, q), **filters)
    assert total == len(items)
    return [item["id"] for item in items]


async def fts_rows(res, doc_type: str, doc_id: int) -> int:
    async with res.db.session() as session:
        return (await session.execute(text(
            "SELECT count(*) FROM search_fts WHERE doc_type = :t AND doc_id = :i"),
            {"t": doc_type, "i": doc_id})).scalar_one()


@pytest.mark.gen_test
async def test_chinese_words_are_found_through_fts5_with_every_word_required(sqlite_resources):
    res = sqlite_resources
    assert res.settings.is_sqlite
    author = await add_user(res)
    both = await add_post(res, author, "我家柯基最近掉毛特别严重")
    corgi = await add_post(res, author, "柯基的屁股真可爱")
    await add_post(res, author, "猫咪掉毛怎么办")
    assert await find(res, "柯基 掉毛") == [both]
    assert set(await find(res, "柯基")) == {both, corgi}
    assert await find(res, "go") == []
    short = await add_post(res, author, "let's go to the park")
    assert await find(res, "go the") == [short]


@pytest.mark.gen_test
async def test_fts5_ranks_by_relevance_then_recency(sqlite_resources):
    import datetime as dt

    res = sqlite_resources
    author = await add_user(res)
    now = utcnow()
    old = await add_post(res, author, "柯基 散步 公园 晴天", created_at=now - dt.timedelta(hours=2))
    new = await add_post(res, author, "柯基 散步 公园 晴天", created_at=now - dt.timedelta(hours=1))
    many = await add_post(res, author, "柯基 柯基 柯基 柯基", created_at=now - dt.timedelta(days=9))
    assert await find(res, "柯基") == [many, new, old]


@pytest.mark.gen_test
async def test_fts5_table_follows_edits_hides_and_deletes(sqlite_resources):
    res = sqlite_resources
    author = await add_user(res)
    post = await add_post(res, author, "柯基")
    assert await fts_rows(res, "post", post) == 1
    async with res.db.session() as session, session.begin():
        (await session.get(Post, post)).text = "金毛"
    await search.index_document(res, "post", post)
    assert await fts_rows(res, "post", post) == 1  # replaced, not added
    assert await find(res, "金毛") == [post] and await find(res, "柯基") == []
    async with res.db.session() as session, session.begin():
        (await session.get(Post, post)).visibility = "followers"
    assert await find(res, "金毛") == []  # read-time check before the task ran
    assert await search.index_document(res, "post", post) == "removed"
    assert await fts_rows(res, "post", post) == 0
    async with res.db.session() as session:
        assert await session.get(SearchDocument, ("post", post)) is None


@pytest.mark.gen_test
async def test_fts5_filters_blocks_users_and_topics(sqlite_resources):
    res = sqlite_resources
    viewer, author, blocked = await add_user(res), await add_user(res), await add_user(res)
    in_topic = await add_post(res, author, "散步", topics=("柯基日常",), pet_types=["dog"])
    await add_post(res, author, "散步", pet_types=["cat"])
    by_blocked = await add_post(res, blocked, "散步")
    assert await find(res, "散步", topic="柯基日常") == [in_topic]
    assert await find(res, "散步", pet_type="dog") == [in_topic]
    async with res.db.session() as session, session.begin():
        session.add(UserBlock(user_id=viewer, blocked_id=blocked))
    assert by_blocked in await find(res, "散步")
    assert by_blocked not in await find(res, "散步", viewer_id=viewer)

    corgi_mum = await add_user(res, nickname="柯基妈妈")
    await search.index_document(res, "user", corgi_mum)
    async with res.db.session() as session:
        users, _ = await user_search.search_users(session, res.settings, viewer,
                                             search.parse_query(res.settings, "柯基"))
        topics, _ = await post_search.search_topics(session, search.parse_query(res.settings, "柯"))
    assert [u["id"] for u in users] == [corgi_mum]
    assert [t["name"] for t in topics] == ["柯基日常"]
