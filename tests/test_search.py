"""Search on MariaDB: Chinese words found through the hex-encoded FULLTEXT tokens, every word
required, relevance then recency, snippets, read-time visibility, users, topics, recent
searches and query limits. Posts are created as rows and indexed by the task's function."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from models.base import utcnow
from models.community import Board, Post, PostTopic, SearchDocument, Topic
from models.platform import OutboxMessage
from models.users import User
from pawhome.search import index as search


def marker() -> str:
    """A word no other test uses, to keep a test's results its own."""
    return "zz" + uuid.uuid4().hex[:8]


async def make_post(resources, author_id: int, text: str, *, topics: tuple[str, ...] = (),
                    index: bool = True, **fields) -> int:
    """A post row (visible and public unless told), optionally indexed at once."""
    async with resources.db.session() as session, session.begin():
        post = Post(author_id=author_id, text=text, status=fields.pop("status", "visible"),
                    visibility=fields.pop("visibility", "public"), **fields)
        session.add(post)
        await session.flush()
        for name in topics:
            topic = (await session.execute(select(Topic).where(Topic.name == name))).scalar()
            if topic is None:
                topic = Topic(name=name)
                session.add(topic)
                await session.flush()
            session.add(PostTopic(post_id=post.id, topic_id=topic.id))
        post_id = post.id
    if index:
        await search.index_document(resources, "post", post_id)
    return post_id


async def update_post(resources, post_id: int, **fields) -> None:
    async with resources.db.session() as session, session.begin():
        post = await session.get(Post, post_id)
        for name, value in fields.items():
            setattr(post, name, value)


async def make_topic(resources, name: str, heat: float = 0.0) -> int:
    async with resources.db.session() as session, session.begin():
        topic = Topic(name=name, heat=heat)
        session.add(topic)
        await session.flush()
        topic_id = topic.id
    await search.index_document(resources, "topic", topic_id)
    return topic_id


async def document_of(resources, doc_type: str, doc_id: int) -> SearchDocument | None:
    async with resources.db.session() as session:
        return await session.get(SearchDocument, (doc_type, doc_id))


async def find_posts(api, user, q: str, **params):
    from urllib.parse import urlencode

    reply = await api.get("/v1/search/posts?" + urlencode({"q": q, **params}), token=user.token)
    return reply.ok()


def ids(page) -> list[int]:
    return [item["id"] for item in page["items"]]


# -- Chinese words and the token encoding ------------------------------------------------------

@pytest.mark.gen_test
async def test_two_chinese_words_find_only_the_post_holding_both(api, resources):
    me = await api.login()
    both = await make_post(resources, me.user_id, "我家柯基最近掉毛特别严重，每天都要梳毛")
    only_corgi = await make_post(resources, me.user_id, "柯基的屁股真可爱")
    only_shedding = await make_post(resources, me.user_id, "猫咪掉毛怎么办")
    page = await find_posts(api, me, "柯基 掉毛")
    found = set(ids(page))
    assert both in found
    assert not found & {only_corgi, only_shedding}
    item = next(i for i in page["items"] if i["id"] == both)
    assert "<em>柯基</em>" in item["snippet"] and "<em>掉毛</em>" in item["snippet"]
    assert item["author"]["id"] == me.user_id


@pytest.mark.gen_test
async def test_a_word_split_differently_inside_the_post_is_still_found(api, resources):
    # "柯基掉毛季" has no spaces: the words must be found inside a longer run of characters.
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} 又到了柯基掉毛季节，家里全是毛")
    assert ids(await find_posts(api, me, f"掉毛 {tag}")) == [post]
    assert ids(await find_posts(api, me, f"柯基 {tag}")) == [post]


@pytest.mark.gen_test
async def test_stored_tokens_are_encoded_words_of_at_least_three_characters(resources):
    tokens = search.document_tokens(["柯基 go the 猫"], [("pet", "dog")])
    assert all(len(t) >= 3 and t.isascii() and t.isalnum() for t in tokens.split())
    assert search.encode_word("go") in tokens.split()
    assert search.encode_word("柯基") in tokens.split()
    assert "柯基" not in tokens and " go " not in f" {tokens} "


@pytest.mark.gen_test
async def test_no_server_stopword_can_equal_an_encoded_token(resources):
    from sqlalchemy import text

    async with resources.db.session() as session:
        min_size = (await session.execute(text("SELECT @@innodb_ft_min_token_size"))).scalar()
        clashes = (await session.execute(text(
            "SELECT value FROM information_schema.INNODB_FT_DEFAULT_STOPWORD "
            "WHERE value REGEXP '^[wf][0-9a-f]*$'"))).scalars().all()
    assert clashes == []
    assert len(search.encode_word("a")) >= min_size


@pytest.mark.gen_test
async def test_short_english_words_and_stopwords_are_searchable(api, resources):
    # MariaDB skips tokens under 3 characters and its stopwords ("the", "is"): the encoded
    # tokens are neither, so "go" and "the" are found like any word.
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} Let's GO to the park, it is sunny")
    other = await make_post(resources, me.user_id, f"{tag} staying home today")
    assert ids(await find_posts(api, me, f"go {tag}")) == [post]
    assert ids(await find_posts(api, me, f"the {tag}")) == [post]
    assert ids(await find_posts(api, me, f"is {tag}")) == [post]
    assert set(ids(await find_posts(api, me, tag))) == {post, other}


@pytest.mark.gen_test
async def test_full_width_and_upper_case_queries_match(api, resources):
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} my corgi loves snow")
    page = await find_posts(api, me, f"ＣＯＲＧＩ {tag.upper()}")
    assert ids(page) == [post]
    assert "<em>corgi</em>" in page["items"][0]["snippet"]


@pytest.mark.gen_test
async def test_pet_type_and_board_names_are_searchable_words(api, resources):
    me = await api.login()
    tag = marker()
    async with resources.db.session() as session, session.begin():
        board = Board(slug="b" + tag[-8:], name="求助")
        session.add(board)
        await session.flush()
        board_id = board.id
    post = await make_post(resources, me.user_id, f"{tag} 晚上一直叫", board_id=board_id,
                           pet_types=["cat"])
    assert ids(await find_posts(api, me, f"猫咪 {tag}")) == [post]
    assert ids(await find_posts(api, me, f"求助 {tag}")) == [post]


# -- ranking and snippets ------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_more_relevant_posts_rank_first_then_newer_ones(api, resources):
    me = await api.login()
    tag = marker()
    now = utcnow()
    old_once = await make_post(resources, me.user_id, f"{tag} 柯基 散步",
                               created_at=now - dt.timedelta(hours=2))
    new_once = await make_post(resources, me.user_id, f"{tag} 柯基 散步",
                               created_at=now - dt.timedelta(hours=1))
    many = await make_post(resources, me.user_id, f"{tag} 柯基 柯基 柯基 柯基 散步",
                           created_at=now - dt.timedelta(days=3))
    page = await find_posts(api, me, f"{tag} 柯基")
    assert ids(page) == [many, new_once, old_once]
    scores = [item["score"] for item in page["items"]]
    assert scores[0] > scores[1] == scores[2]


@pytest.mark.gen_test
async def test_snippet_is_html_escaped_and_windowed_around_the_match(api, resources):
    me = await api.login()
    tag = marker()
    text = "开头" + "很长的铺垫。" * 40 + f"<script>alert(1)</script> 柯基 {tag} & 朋友" + "结尾" * 40
    post = await make_post(resources, me.user_id, text)
    item = (await find_posts(api, me, f"柯基 {tag}"))["items"][0]
    assert item["id"] == post
    snippet = item["snippet"]
    assert "<script>" not in snippet and "</script>" not in snippet
    assert "&lt;/script&gt;" in snippet
    assert "<em>柯基</em>" in snippet and f"<em>{tag}</em>" in snippet and "&amp;" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    visible = snippet.replace("<em>", "").replace("</em>", "").replace("&lt;", "<") \
        .replace("&gt;", ">").replace("&amp;", "&")
    assert len(visible) <= resources.settings.search_snippet_chars + 2


def test_highlight_merges_adjacent_matches_and_keeps_short_text_whole():
    assert search.highlight("柯基掉毛了", ["柯基", "掉毛"]) == "<em>柯基掉毛</em>了"
    assert search.highlight("a<b>", ["zz"]) == "a&lt;b&gt;"
    assert search.highlight("Ｃｏｒｇｉ!", ["corgi"]) == "<em>Ｃｏｒｇｉ</em>!"


# -- what is indexed, and the read-time checks --------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("fields", [{"visibility": "followers"}, {"visibility": "private"},
                                    {"status": "pending"}, {"status": "hidden"},
                                    {"status": "removed"}])
async def test_posts_not_public_and_visible_are_never_indexed(api, resources, fields):
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} 只给朋友看的柯基", **fields)
    assert await document_of(resources, "post", post) is None
    assert ids(await find_posts(api, me, tag)) == []


@pytest.mark.gen_test
async def test_post_hidden_after_indexing_is_filtered_at_read_time(api, resources):
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} 柯基")
    assert ids(await find_posts(api, me, tag)) == [post]
    # The index is stale until the task runs again; the read checks the row itself.
    for fields in ({"visibility": "followers"}, {"status": "hidden"},
                   {"deleted_at": utcnow()}):
        await update_post(resources, post, **fields)
        assert ids(await find_posts(api, me, tag)) == [], fields
        await update_post(resources, post, visibility="public", status="visible",
                          deleted_at=None)
    assert ids(await find_posts(api, me, tag)) == [post]


@pytest.mark.gen_test
async def test_reindexing_an_edited_or_deleted_post_updates_the_index(api, resources):
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} 柯基")
    await update_post(resources, post, text=f"{tag} 金毛")
    assert await search.index_document(resources, "post", post) == "indexed"
    assert ids(await find_posts(api, me, f"金毛 {tag}")) == [post]
    assert ids(await find_posts(api, me, f"柯基 {tag}")) == []
    await update_post(resources, post, deleted_at=utcnow())
    assert await search.index_document(resources, "post", post) == "removed"
    assert await document_of(resources, "post", post) is None
    # Idempotent: a redelivered task for a removed or missing row is harmless.
    assert await search.index_document(resources, "post", post) == "removed"
    assert await search.index_document(resources, "post", 2**62) == "removed"


@pytest.mark.gen_test
async def test_blocked_and_blocking_authors_are_hidden_from_the_viewer(api, resources):
    viewer, blocked, blocker, stranger = [await api.login() for _ in range(4)]
    tag = marker()
    by_blocked = await make_post(resources, blocked.user_id, f"{tag} 柯基")
    by_blocker = await make_post(resources, blocker.user_id, f"{tag} 柯基")
    by_stranger = await make_post(resources, stranger.user_id, f"{tag} 柯基")
    (await api.post("/v1/users/me/blocks", json={"user_id": blocked.user_id},
                    token=viewer.token)).ok()
    (await api.post("/v1/users/me/blocks", json={"user_id": viewer.user_id},
                    token=blocker.token)).ok()
    assert ids(await find_posts(api, viewer, tag)) == [by_stranger]
    assert set(ids(await find_posts(api, stranger, tag))) == {by_blocked, by_blocker,
                                                                by_stranger}


@pytest.mark.gen_test
async def test_posts_of_banned_authors_are_not_found(api, resources):
    me, author = await api.login(), await api.login()
    tag = marker()
    await make_post(resources, author.user_id, f"{tag} 柯基")
    async with resources.db.session() as session, session.begin():
        (await session.get(User, author.user_id)).status = "banned"
    assert (await find_posts(api, me, tag))["total"] == 0


@pytest.mark.gen_test
async def test_topic_and_pet_type_filters_narrow_the_results(api, resources):
    me = await api.login()
    tag = marker()
    topic = "柯基日常" + tag[-4:]
    dog_in_topic = await make_post(resources, me.user_id, f"{tag} 散步", topics=(topic,),
                                   pet_types=["dog"])
    cat_in_topic = await make_post(resources, me.user_id, f"{tag} 散步", topics=(topic,),
                                   pet_types=["cat"])
    dog_elsewhere = await make_post(resources, me.user_id, f"{tag} 散步", pet_types=["dog"])
    assert set(ids(await find_posts(api, me, tag, topic=topic))) == {dog_in_topic, cat_in_topic}
    assert set(ids(await find_posts(api, me, tag, topic="#" + topic))) == {dog_in_topic,
                                                                          cat_in_topic}
    assert set(ids(await find_posts(api, me, tag, pet_type="dog"))) == {dog_in_topic,
                                                                       dog_elsewhere}
    assert ids(await find_posts(api, me, tag, topic=topic, pet_type="dog")) == [dog_in_topic]
    page = await find_posts(api, me, tag, topic=topic)
    assert all(item["topics"] == [topic] for item in page["items"])
    (await api.get(f"/v1/search/posts?q={tag}&pet_type=dragon", token=me.token)).error(
        422, field="pet_type")


@pytest.mark.gen_test
async def test_results_are_paged_with_a_total(api, resources):
    me = await api.login()
    tag = marker()
    posts = [await make_post(resources, me.user_id, f"{tag} 第{i}篇") for i in range(5)]
    first = await find_posts(api, me, tag, limit=2)
    second = await find_posts(api, me, tag, limit=2, page=2)
    third = await find_posts(api, me, tag, limit=2, page=3)
    assert first["total"] == 5 and first["totalPages"] == 3
    assert set(ids(first) + ids(second) + ids(third)) == set(posts)
    assert len(ids(third)) == 1
    (await api.get(f"/v1/search/posts?q={tag}&page=51", token=me.token)).error(422,
                                                                               field="page")


def test_index_later_enqueues_the_index_task_through_the_outbox():
    class FakeSession:  # only collects what index_later adds
        def __init__(self):
            self.added, self.info = [], {}

        def add(self, row):
            self.added.append(row)

    session = FakeSession()
    search.index_later(session, "post", 42)
    (row,) = session.added
    assert isinstance(row, OutboxMessage) and row.name == "search.index"
    assert row.payload == {"args": ["post", 42], "kwargs": {}}
    with pytest.raises(ValueError):
        search.index_later(session, "comment", 1)


@pytest.mark.gen_test
async def test_index_later_rows_commit_with_the_change(resources):
    async with resources.db.session() as session, session.begin():
        search.index_later(session, "topic", 7)
        row_id = (await session.execute(
            select(OutboxMessage.id).where(OutboxMessage.name == "search.index")
            .order_by(OutboxMessage.id.desc()))).scalar()
        assert row_id is not None
        await session.rollback()
    async with resources.db.session() as session:
        assert await session.get(OutboxMessage, row_id) is None


# -- users and topics ---------------------------------------------------------------------------

async def set_profile(api, user, **body):
    (await api.put("/v1/users/me", json=body, token=user.token)).ok()


@pytest.mark.gen_test
async def test_users_are_found_by_nickname_and_shown_bio(api, resources):
    me, corgi_mum, hidden_bio = await api.login(), await api.login(), await api.login()
    tag = marker()
    await set_profile(api, corgi_mum, nickname="柯基妈妈", bio=f"{tag} 两只柯基")
    await set_profile(api, hidden_bio, nickname="路人甲", bio=f"{tag} 秘密")
    (await api.put("/v1/users/me/settings", json={"privacy_prefs": {"show_bio": False}},
                   token=hidden_bio.token)).ok()
    for user in (corgi_mum, hidden_bio):
        await search.index_document(resources, "user", user.user_id)
    page = (await api.get(f"/v1/search/users?q={tag}", token=me.token)).ok()
    assert [item["id"] for item in page["items"]] == [corgi_mum.user_id]
    item = page["items"][0]
    assert f"<em>{tag}</em>" in item["bio_snippet"] and item["nickname"] == "柯基妈妈"
    page = (await api.get("/v1/search/users?q=柯基妈妈", token=me.token)).ok()
    assert corgi_mum.user_id in [item["id"] for item in page["items"]]
    # Blocked either way: gone for the viewer.
    (await api.post("/v1/users/me/blocks", json={"user_id": me.user_id},
                    token=corgi_mum.token)).ok()
    page = (await api.get(f"/v1/search/users?q={tag}", token=me.token)).ok()
    assert page["items"] == []


@pytest.mark.gen_test
async def test_topics_match_exactly_then_by_prefix_then_by_words(api, resources):
    me = await api.login()
    tag = marker()
    exact = await make_topic(resources, f"{tag}柯基", heat=1)
    prefixed = await make_topic(resources, f"{tag}柯基日常", heat=50)
    by_words = await make_topic(resources, f"我家柯基{tag}", heat=100)
    unrelated = await make_topic(resources, f"{tag}金毛", heat=500)
    page = (await api.get(f"/v1/search/topics?q={tag}柯基", token=me.token)).ok()
    assert [t["id"] for t in page["items"]] == [exact, prefixed, by_words]
    assert unrelated not in [t["id"] for t in page["items"]]
    # A prefix of a name finds it before any segmentation could.
    page = (await api.get(f"/v1/search/topics?q={tag}", token=me.token)).ok()
    assert {t["id"] for t in page["items"]} >= {exact, prefixed, unrelated}
    # LIKE wildcards in the query are literal characters ("_" would match any character).
    page = (await api.get(f"/v1/search/topics?q={tag[:-1]}_", token=me.token)).ok()
    assert page["items"] == []
    page = (await api.get(f"/v1/search/topics?q={tag[:-1]}%25", token=me.token)).ok()
    assert page["items"] == []


# -- recent searches ----------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_recent_searches_are_newest_first_deduplicated_and_capped(api, settings):
    me, other = await api.login(), await api.login()
    for q in ("柯基", "金毛", "柯基"):
        await find_posts(api, me, q)
    recent = (await api.get("/v1/search/recent", token=me.token)).ok()["items"]
    assert recent == ["柯基", "金毛"]
    assert (await api.get("/v1/search/recent", token=other.token)).ok()["items"] == []
    for i in range(settings.search_recent_limit + 5):
        await find_posts(api, me, f"词{i}")
    recent = (await api.get("/v1/search/recent", token=me.token)).ok()["items"]
    assert len(recent) == settings.search_recent_limit
    assert recent[0] == f"词{settings.search_recent_limit + 4}"
    (await api.request("DELETE", "/v1/search/recent", token=me.token)).ok()
    assert (await api.get("/v1/search/recent", token=me.token)).ok()["items"] == []


@pytest.mark.gen_test
async def test_refused_queries_and_later_pages_are_not_recorded(api):
    me = await api.login()
    (await api.get("/v1/search/posts?q=%20%20", token=me.token)).error(422, field="q")
    await find_posts(api, me, "  柯基   掉毛 ")
    await find_posts(api, me, "金毛", page=2)
    assert (await api.get("/v1/search/recent", token=me.token)).ok()["items"] == ["柯基 掉毛"]


@pytest.mark.gen_test
async def test_search_needs_a_login(api):
    (await api.get("/v1/search/posts?q=柯基")).error(401)
    (await api.get("/v1/search/recent")).error(401)


# -- query limits and hostile input -------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["", "q=", "q=%20%09", "q=%EF%BC%9F%EF%BC%81",  # ？！
                                   "q=" + "柯" * 51,
                                   "q=一%20二%20三%20四%20五%20六%20七%20八%20九",
                                   "q=x&unknown=1"])
async def test_bad_queries_are_refused_with_422(api, query):
    me = await api.login()
    body = (await api.get("/v1/search/posts?" + query, token=me.token)).error(422)
    assert body["errors"]


@pytest.mark.gen_test
@pytest.mark.parametrize("q", ['柯基") OR 1=1 --', "+柯基 -掉毛 *", '"柯基', "柯基 @>~<()",
                               "' UNION SELECT 1", "柯基%_\\"])
async def test_operators_and_quotes_in_queries_are_only_text(api, resources, q):
    from urllib.parse import quote

    me = await api.login()
    for path in ("posts", "users", "topics"):
        reply = await api.get(f"/v1/search/{path}?q={quote(q)}", token=me.token)
        assert reply.status == 200, reply.body


@pytest.mark.gen_test
async def test_eight_words_are_allowed_and_every_one_is_required(api, resources):
    me = await api.login()
    tag = marker()
    post = await make_post(resources, me.user_id, f"{tag} 一只 柯基 今天 在 公园 散步 很 开心")
    assert ids(await find_posts(api, me, f"{tag} 柯基 今天 公园 散步 开心 一只 很")) == [post]
    assert ids(await find_posts(api, me, f"{tag} 柯基 今天 公园 散步 开心 一只 哈士奇")) == []


@pytest.mark.gen_test
async def test_reindex_batch_rebuilds_documents_and_chains_the_next_batch(resources,
                                                                          monkeypatch):
    # No gateway here, so no relay: the chained row stays put for the test to read (and
    # remove, so no worker later walks the whole table).
    async with resources.db.session() as session, session.begin():
        author = User(nickname="reindex")
        session.add(author)
        await session.flush()
        author_id = author.id
    posts = [await make_post(resources, author_id, f"{marker()} 柯基", index=False)
             for _ in range(3)]
    monkeypatch.setattr(search, "REINDEX_BATCH", 2)
    assert await search.reindex_batch(resources, "post", posts[0] - 1) == posts[1]
    assert [await document_of(resources, "post", p) is not None for p in posts] == \
        [True, True, False]
    async with resources.db.session() as session, session.begin():
        chained = (await session.execute(
            select(OutboxMessage).where(OutboxMessage.name == "search.reindex_batch"))
        ).scalars().all()
        assert [row.payload["args"] for row in chained] == [["post", posts[1]]]
        for row in chained:
            await session.delete(row)
    monkeypatch.setattr(search, "REINDEX_BATCH", 1)
    assert await search.reindex_batch(resources, "post", posts[1]) == posts[2]
    assert await document_of(resources, "post", posts[2]) is not None
    async with resources.db.session() as session, session.begin():
        for row in (await session.execute(select(OutboxMessage).where(
                OutboxMessage.name == "search.reindex_batch"))).scalars():
            await session.delete(row)
