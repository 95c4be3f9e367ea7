"""Emoji and other 4-byte characters round-trip on MariaDB (utf8mb4 end to end: server,
table, column and connection), through the ORM and through the API.
"""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from models.users import User

NICKNAMES = [
    "豆豆🐶🐾",          # CJK + emoji: the seed documents' own example
    "𠮷野家🍚",          # a CJK Extension B character: 4 bytes, not an emoji
    "👩‍👩‍👧 family",     # a ZWJ sequence: several code points that render as one
    "🏳️‍🌈 ok",           # variation selector + ZWJ
    "café ☕ Ωmega",     # 2- and 3-byte characters beside each other
]


async def _create_user(resources, nickname: str) -> int:
    async with resources.db.session() as session, session.begin():
        user = User(openid="u8-" + uuid.uuid4().hex[:20], nickname=nickname)
        session.add(user)
        await session.flush()
        return user.id


@pytest.mark.gen_test
@pytest.mark.parametrize("nickname", NICKNAMES)
async def test_four_byte_nickname_round_trips_through_the_orm(resources, nickname):
    user_id = await _create_user(resources, nickname)
    async with resources.db.session() as session:  # a new session: read from the server
        stored = await session.get(User, user_id)
        length, octets = (await session.execute(
            text("SELECT CHAR_LENGTH(nickname), LENGTH(nickname) FROM users WHERE id = :id"),
            {"id": user_id})).one()
    assert stored.nickname == nickname
    # The server counts characters, not bytes, and stored every byte (no '?' substitution).
    assert length == len(nickname)
    assert octets == len(nickname.encode("utf-8"))


@pytest.mark.gen_test
async def test_users_table_and_connection_are_utf8mb4(resources):
    async with resources.db.session() as session:
        column_charset = (await session.execute(text(
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' "
            "AND COLUMN_NAME = 'nickname'"))).scalar_one()
        connection_charset = (await session.execute(
            text("SELECT @@character_set_connection"))).scalar_one()
    assert column_charset == "utf8mb4"
    assert connection_charset == "utf8mb4"


@pytest.mark.gen_test
async def test_lookup_by_text_tells_different_emoji_apart(resources):
    tag = uuid.uuid4().hex[:8]
    dog = await _create_user(resources, f"{tag}🐶")
    await _create_user(resources, f"{tag}🐱")
    async with resources.db.session() as session:
        found = (await session.execute(
            select(User.id).where(User.nickname == f"{tag}🐶"))).scalars().all()
    assert found == [dog]


@pytest.mark.gen_test
async def test_emoji_nickname_round_trips_through_the_api(api):
    me = await api.login()
    nickname = "豆豆🐶🐾"
    reply = await api.put("/v1/users/me", json={"nickname": nickname}, token=me.token)
    if reply.status in (404, 405):
        pytest.skip("PUT /v1/users/me does not exist yet")
    assert reply.ok()["nickname"] == nickname
    assert (await api.get("/v1/users/me", token=me.token)).ok()["nickname"] == nickname
