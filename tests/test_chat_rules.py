"""The one copy of the direct-message rules (pawhome/messaging/chat_rules.py): a batch of
sends decided from ONE facts statement, each refusal its sender's own; the group commit's raw
connection reads the very same facts; and the same rules hold on SQLite (embedded mode)."""
from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, func, select

from models.platform import OutboxMessage
from models.users import User, UserBlock, UserFollow, UserSettings
from pawhome.messaging import chat, chat_rules, chat_writer_sql
from pawhome.messaging.chat_rules import Target
from pawhome.platform import migrate
from pawhome.platform.errors import ChatBlocked, ChatNotAllowed, NotFound
from pawhome.platform.resources import Resources
from settings import Settings
from tests.fixtures_worker import wait_until


def _body(text: str = "hi") -> chat.MessageBody:
    return chat.MessageBody(client_msg_id=uuid.uuid4().hex, kind="text", text=text)


async def _user(resources, allow: str | None = None, status: str = "active") -> int:
    async with resources.db.session() as session, session.begin():
        user = User(openid="r-" + uuid.uuid4().hex[:24], nickname="r", role="user",
                    status=status)
        session.add(user)
        await session.flush()
        if allow is not None:
            session.add(UserSettings(user_id=user.id, notification_prefs={},
                                     privacy_prefs={"allow_messages_from": allow}))
        return user.id


async def _add(resources, *rows) -> None:
    async with resources.db.session() as session, session.begin():
        session.add_all(rows)


async def _verdicts(resources, targets: list[Target]) -> dict:
    async with resources.db.session() as session:
        return await chat_rules.check_sends(session, targets)


def _statements_on(engine):
    """The SQL statements this test's own task runs on `engine` from now on (a list that
    fills up). Background work on the same engine (the outbox relay deleting rows an earlier
    send published) runs in other tasks and is not counted."""
    seen: list[str] = []
    task = asyncio.current_task()

    def record(_conn, _cursor, statement, *_args) -> None:
        if asyncio.current_task() is task:
            seen.append(statement)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine.sync_engine, "before_cursor_execute", record)


@pytest.mark.gen_test(timeout=30)
async def test_one_facts_statement_decides_a_batch_and_each_refusal_is_its_own(resources):
    a, b, blocker, shy, picky, fan_of_a, gone = [await _user(resources) for _ in range(7)]
    async with resources.db.session() as session, session.begin():
        for user_id, allow in ((shy, "nobody"), (picky, "following"), (fan_of_a, "following")):
            session.add(UserSettings(user_id=user_id, notification_prefs={},
                                     privacy_prefs={"allow_messages_from": allow}))
        session.add_all([UserBlock(user_id=blocker, blocked_id=a),
                         UserFollow(follower_id=fan_of_a, followee_id=a)])
    ab = (await chat.send_message(resources, a, _body(), to_user_id=b))["conversation_id"]
    # shy wrote to a first: a may answer in that conversation, but not start one elsewhere.
    with_shy = (await chat.send_message(resources, shy, _body(), to_user_id=a))[
        "conversation_id"]
    async with resources.db.session() as session, session.begin():
        (await session.get(User, gone)).status = "banned"
    stranger = await _user(resources)

    targets = [Target(a, ab, None), Target(a, None, b), Target(a, None, blocker),
               Target(blocker, None, a), Target(a, None, picky), Target(a, None, fan_of_a),
               Target(a, None, gone), Target(a, None, 2**62), Target(stranger, ab, None),
               Target(a, with_shy, None), Target(b, None, shy)]
    statements, stop = _statements_on(resources.db.engine)
    try:
        verdicts = await _verdicts(resources, targets)
    finally:
        stop()
    # One statement for all the facts; only the send into a conversation that a privacy
    # setting stops outright looks at the conversation's history (a reply is not
    # unsolicited) — without a conversation there is no history to look at.
    assert len(statements) == 1 + 1, statements
    ok = {t: v for t, v in verdicts.items() if isinstance(v, chat_rules.Facts)}
    assert set(ok) == {Target(a, ab, None), Target(a, None, b), Target(a, None, fan_of_a),
                       Target(a, with_shy, None)}
    assert ok[Target(a, None, b)].conversation_id == ab
    assert ok[Target(a, None, fan_of_a)].conversation_id is None  # first message: created
    assert ok[Target(a, with_shy, None)].recipient_id == shy
    assert isinstance(verdicts[Target(a, None, blocker)], ChatBlocked)
    assert isinstance(verdicts[Target(blocker, None, a)], ChatBlocked)  # either direction
    assert isinstance(verdicts[Target(a, None, picky)], ChatNotAllowed)
    assert "follow" in verdicts[Target(a, None, picky)].message
    assert isinstance(verdicts[Target(b, None, shy)], ChatNotAllowed)
    assert "does not accept" in verdicts[Target(b, None, shy)].message
    for unknown in (Target(a, None, gone), Target(a, None, 2**62)):
        assert isinstance(verdicts[unknown], NotFound)
        assert verdicts[unknown].message == "User not found"
    assert verdicts[Target(stranger, ab, None)].message == "Conversation not found"


@pytest.mark.gen_test(timeout=30)
async def test_the_group_commit_reads_the_same_facts_as_a_session(resources):
    a, b, c, d = [await _user(resources) for _ in range(4)]
    picky = await _user(resources, allow="following")
    await _add(resources, UserBlock(user_id=c, blocked_id=a),
               UserFollow(follower_id=picky, followee_id=a))
    ab = (await chat.send_message(resources, a, _body(), to_user_id=b))["conversation_id"]
    cd = (await chat.send_message(resources, c, _body(), to_user_id=d))["conversation_id"]
    targets = [Target(a, ab, None), Target(b, ab, None), Target(a, None, b),
               Target(a, None, c), Target(a, None, picky), Target(b, None, picky),
               Target(a, cd, None), Target(a, None, 2**62)]
    async with resources.db.session() as session:
        through_session = await chat_rules.load_facts(session, targets)
    lane = chat_writer_sql.Lane(resources.db)
    try:
        literal = (await lane.connection()).escape
        sql = chat_writer_sql.facts_and_stored_sql(lane.dialect, targets, [(a, "none")],
                                                   literal)
        stored, facts_rows = await lane.execute(sql)
        await lane.execute("COMMIT")
    finally:
        await lane.release()
    assert stored[1] == []
    through_raw = chat_rules.facts_of_rows(facts_rows[1])
    assert through_raw == through_session
    assert set(through_raw) == set(targets[:-2])  # not a member of cd; no such user
    assert through_raw[Target(a, None, c)].blocked
    assert through_raw[Target(a, None, picky)].follows_sender
    assert not through_raw[Target(b, None, picky)].follows_sender
    assert through_raw[Target(a, None, picky)].allow_messages_from == "following"


@pytest.fixture
def sqlite_resources(tmp_path, io_loop):
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop: another thread
        pool.submit(migrate.upgrade, url).result()
    res = Resources(Settings(database_url=url, redis_url="memory://chat-rules",
                             subscribe_templates={}))
    yield res

    async def events_delivered() -> bool:  # each send deletes its event rows in the background
        async with res.db.session() as session:
            return (await session.execute(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.kind == "event"))).scalar_one() == 0

    async def close() -> None:
        await wait_until(events_delivered, timeout=5, interval=0.02,
                         what="the background deletes")
        await res.close()
    io_loop.run_sync(close)


@pytest.mark.gen_test(timeout=30)
async def test_the_same_rules_hold_on_sqlite(sqlite_resources):
    res = sqlite_resources
    a, b, c = [await _user(res) for _ in range(3)]
    shy = await _user(res, allow="nobody")
    picky = await _user(res, allow="following")
    await _add(res, UserBlock(user_id=c, blocked_id=a),
               UserFollow(follower_id=picky, followee_id=b))
    first = await chat.send_message(res, a, _body("first"), to_user_id=b)
    again = await chat.send_message(res, b, _body("reply"), to_user_id=a)
    assert again["conversation_id"] == first["conversation_id"] and again["seq"] == 2
    with pytest.raises(ChatBlocked):
        await chat.send_message(res, a, _body(), to_user_id=c)
    with pytest.raises(ChatBlocked):
        await chat.open_conversation(res, c, a)
    with pytest.raises(ChatNotAllowed):
        await chat.send_message(res, a, _body(), to_user_id=picky)
    assert (await chat.send_message(res, b, _body(), to_user_id=picky))["seq"] == 1
    with pytest.raises(ChatNotAllowed):
        await chat.send_message(res, a, _body(), to_user_id=shy)
    # shy writes first; a may answer in that conversation.
    opened = await chat.send_message(res, shy, _body("hello"), to_user_id=a)
    reply = await chat.send_message(res, a, _body("hi"),
                                    conversation_id=opened["conversation_id"])
    assert reply["seq"] == 2
    with pytest.raises(NotFound):
        await chat.send_message(res, c, _body(), conversation_id=opened["conversation_id"])
    assert (await chat.open_conversation(res, a, b))["id"] == first["conversation_id"]


def test_privacy_settings_read_the_same_from_a_dict_and_from_json_text():
    for stored, expected in ((None, "everyone"), ({}, "everyone"), ("{}", "everyone"),
                             ({"allow_messages_from": "nobody"}, "nobody"),
                             ('{"allow_messages_from": "following"}', "following"),
                             ({"allow_messages_from": "bogus"}, "everyone"),
                             ('{"show_bio": false}', "everyone")):
        assert chat_rules.allow_messages_from(stored) == expected
