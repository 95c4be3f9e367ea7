"""Control characters (C0 other than tab, LF and CR, and DEL) in user text are refused with
422 and a field error, in every JSON body, query string and WebSocket frame, and nothing is
stored; the OpenAPI document states the same rule as a pattern on every request string."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

import handlers.chat_frames  # noqa: F401  (registers the chat frames, as handlers/realtime does)
import wsclient
from gateway.control_characters import (
    SCHEMA_PATTERN,
    control_character_errors,
    has_control_characters,
    json_may_hold_control_characters,
)
from gateway.openapi import build_document
from handlers import ROUTES
from models.community import Comment, Post
from models.realtime import Message
from models.users import User
from pawhome.platform import codec
from tests.interactions_support import count, make_post

REFUSED = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\x7f"]


@pytest.mark.gen_test
async def test_a_nul_in_a_post_is_422_and_no_post_is_stored(api):
    me = await api.login()
    reply = await api.post("/v1/posts", token=me.token, json={"text": "柯基\x00掉毛"})
    body = reply.error(422, code=42200, field="text")
    assert body["errors"] == [{"field": "text", "message": "control characters are not allowed"}]
    assert await count(api.app.settings["resources"],
                       select(func.count()).select_from(Post)
                       .where(Post.author_id == me.user_id)) == 0
    # Lines and tabs are text.
    (await api.post("/v1/posts", token=me.token, json={"text": "柯基\n\t掉毛\r\n"})).ok(201)


@pytest.mark.gen_test
async def test_a_control_character_in_a_comment_is_422_and_no_comment_is_stored(api, resources):
    me = await api.login()
    post_id = await make_post(resources, me.user_id)
    for text in ("好可爱\x1b[31m", "好可爱\x7f", "好可爱\b"):
        (await api.post(f"/v1/posts/{post_id}/comments", token=me.token,
                        json={"text": text})).error(422, code=42200, field="text")
    assert await count(resources, select(func.count()).select_from(Comment)
                       .where(Comment.post_id == post_id)) == 0


@pytest.mark.gen_test
async def test_a_nul_in_a_nickname_is_422_and_the_profile_is_unchanged(api, resources):
    me = await api.login()
    before = (await api.get("/v1/users/me", token=me.token)).ok()["nickname"]
    (await api.put("/v1/users/me", token=me.token,
                   json={"nickname": "豆\x00豆", "bio": "ok"})).error(422, field="nickname")
    assert (await api.get("/v1/users/me", token=me.token)).ok()["nickname"] == before
    async with resources.db.session() as session:
        assert "\x00" not in (await session.get(User, me.user_id)).nickname


@pytest.mark.gen_test
async def test_nested_strings_keys_and_query_strings_are_checked_too(api):
    me = await api.login()
    reply = await api.post("/v1/posts", token=me.token,
                           json={"text": "ok", "topics": ["柯基", "柯\x01基"]})
    reply.error(422, field="topics.1")
    reply = await api.put("/v1/users/me/settings", token=me.token,
                          json={"notification_prefs": {"li\x00kes": True}})
    reply.error(422, field="notification_prefs.li\\u0000kes")
    (await api.get("/v1/search/posts?q=%E6%9F%AF%00", token=me.token)).error(422, field="q")
    # A lone surrogate cannot get as far: it is not valid JSON text.
    (await api.post("/v1/posts", token=me.token,
                    body=b'{"text": "a\\ud800b"}')).error(400, code=40001)


@pytest.mark.gen_test(timeout=30)
async def test_a_nul_in_a_chat_message_frame_is_an_error_frame_and_nothing_is_stored(
        api, base_url, resources):
    sender, peer = await api.login(), await api.login()
    client = await wsclient.connect(base_url.replace("http://", "ws://") + "/v1/ws", sender.token)
    try:
        error = await client.request("chat.send", client_msg_id=uuid.uuid4().hex, kind="text",
                                     text="在吗\x00", to_user_id=peer.user_id)
        assert error["type"] == "error" and error["code"] == 42200
        assert error["errors"] == [{"field": "text",
                                    "message": "control characters are not allowed"}]
        sent = select(func.count()).select_from(Message).where(Message.sender_id == sender.user_id)
        assert await count(resources, sent) == 0
        # The socket stays usable.
        ack = await client.request("chat.send", client_msg_id=uuid.uuid4().hex, kind="text",
                                   text="在吗", to_user_id=peer.user_id)
        assert ack["type"] == "chat.ack"
        assert await count(resources, sent) == 1
    finally:
        await client.close()


def test_the_json_pre_check_sees_every_spelling_of_a_refused_character():
    for char in REFUSED:
        for text in (codec.dumps({"k": "a" + char}), codec.dumps_str({"k": char}),
                     f'{{"k": "\\u{ord(char):04X}"}}'.encode(),
                     f'{{"\\u{ord(char):04x}": 1}}'):
            assert json_may_hold_control_characters(text), (char, text)
            assert control_character_errors(codec.loads(text)), (char, text)
    assert not json_may_hold_control_characters(codec.dumps({"text": "柯基\n\t\r é 🐶"}))


def test_the_documented_pattern_and_the_check_agree_on_every_character():
    pattern = re.compile(SCHEMA_PATTERN)
    for code in [*range(0x100), 0x2028, 0xFEFF, 0xFFFF, 0x1F436]:
        char = chr(code)
        assert (pattern.fullmatch("a" + char + "b") is None) == has_control_characters(char), code


def test_every_request_string_in_the_openapi_document_refuses_control_characters():
    document = build_document(ROUTES)
    components = document["components"]["schemas"]
    checked, seen = [], set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "").rpartition("/")[2]
            if ref and ref not in seen:
                seen.add(ref)
                walk(components[ref])
            if node.get("type") == "string" and not {"enum", "const", "format"} & set(node):
                checked.append(node)
                assert re.search(node["pattern"], "a\x00") is None, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in document["paths"].values():
        for operation in path.values():
            walk([p for p in operation.get("parameters", []) if p["in"] == "query"])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media["schema"])
    assert len(checked) > 50
