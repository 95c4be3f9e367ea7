"""pawhome.platform.db.Prepared on MariaDB: a Core SELECT compiled once, run as SQL text, with IN
lists of any length, on a connection or a session, JSON columns embedded as stored."""
from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from models.community import Post
from pawhome.platform import codec
from pawhome.platform.db import Prepared
from tests.interactions_support import make_post, make_user

POSTS = Post.__table__
BY_IDS = Prepared(select(POSTS.c.id, POSTS.c.media_ids, POSTS.c.hot_score, POSTS.c.created_at)
                  .where(POSTS.c.id.in_(bindparam("ids", expanding=True)),
                         POSTS.c.status == bindparam("status", "visible"))
                  .order_by(POSTS.c.id))


@pytest.mark.gen_test
async def test_in_lists_of_every_length_and_the_statement_defaults(resources):
    author = await make_user(resources)
    ids = [await make_post(resources, author.user_id, media_ids=[n, n + 1]) for n in range(3)]
    hidden = await make_post(resources, author.user_id, status="hidden")
    async with resources.db.connection() as connection:
        for wanted in ([], ids[:1], ids, [*ids, hidden], ids[:1]):
            rows = await BY_IDS.rows(connection, ids=wanted)
            assert [r[0] for r in rows] == [i for i in wanted if i != hidden]
        # a default ("visible") can be overridden like any parameter
        rows = await BY_IDS.rows(connection, ids=[hidden], status="hidden")
        assert [r[0] for r in rows] == [hidden]


@pytest.mark.gen_test
async def test_json_columns_are_embedded_as_stored_and_other_types_processed(resources):
    author = await make_user(resources)
    post_id = await make_post(resources, author.user_id, media_ids=[7, 8])
    async with resources.db.session() as session:  # a session works as well
        ((row_id, media_ids, hot_score, created_at),) = await BY_IDS.rows(session, ids=[post_id])
        orm = await session.get(Post, post_id)
    assert row_id == post_id and isinstance(media_ids, codec.Raw)
    assert codec.loads(codec.dumps({"m": media_ids})) == {"m": [7, 8]}
    assert isinstance(hot_score, float) and created_at == orm.created_at
