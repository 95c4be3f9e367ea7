"""The community tab end to end, through a real Celery worker and the fake WeChat: a post with
an image goes from upload to the feed, search and the author's notifications, with a like
counted live on a second client's open post page (issue 4's "done when")."""
from __future__ import annotations

import pytest

from tests.fixtures_worker import wait_until
from tests.media_helpers import jpeg_bytes, upload
from tests.test_chat_socket import ChatSocket
from tests.test_moderation import push
from tests.test_search import find_posts, ids, marker


@pytest.mark.gen_test(timeout=120)
async def test_a_post_with_an_image_reaches_feed_search_notifications_and_live_likes(
        api, app, base_url, wechat, celery_worker_process):
    author, fan, reader = await api.login(), await api.login(), await api.login()
    author_socket = await ChatSocket.connect(base_url, author.token)
    reader_socket = await ChatSocket.connect(base_url, reader.token)
    try:
        # 1. Upload: PUT to the storage URL, complete; the media worker makes it ready and
        #    the uploader hears of it on the socket.
        media_id = await upload(api, author, jpeg_bytes(1200, 900, gps=True))
        ready = await author_socket.of_type("media.ready", timeout=60)
        assert ready["data"]["media_id"] == media_id

        # 2. Post it: pending until moderation (text by msgSecCheck, the image by
        #    mediaCheckAsync, whose verdict WeChat pushes later).
        tag = marker()
        created = (await api.post("/v1/posts", token=author.token, json={
            "text": f"{tag} 我家柯基掉毛了 #柯基日常", "media_ids": [media_id],
            "pet_types": ["dog"]})).ok(201)
        post_id = created["id"]
        assert created["status"] == "pending"
        assert (await api.get(f"/v1/posts/{post_id}", token=reader.token)).status == 404

        async def image_check_sent():
            return list(wechat.media_checks) or None

        (trace_id,) = await wait_until(image_check_sent, timeout=30,
                                       what="the worker to ask WeChat about the image")
        assert (await push(api, wechat, trace_id, "pass")).status == 200
        status = await author_socket.expect(
            lambda f: f["type"] == "post.status" and f["data"]["post_id"] == post_id
            and f["data"]["status"] == "visible", timeout=30)
        assert status["data"]["status"] == "visible"

        # 3. The latest feed shows it to anyone, with its image and topic.
        async def in_feed():
            page = (await api.get("/v1/posts?sort=latest&limit=20")).ok()
            return next((p for p in page["items"] if p["id"] == post_id), None)

        shown = await wait_until(in_feed, timeout=10, what="the post in the latest feed")
        assert shown["media_ids"] == [media_id] and shown["topics"] == ["柯基日常"]
        assert shown["author"]["id"] == author.user_id and shown["pet_types"] == ["dog"]

        # 4. Search finds it by two Chinese words of its text.
        async def found():
            return ids(await find_posts(api, reader, f"柯基 掉毛 {tag}")) == [post_id]

        await wait_until(found, timeout=20, interval=0.05, what="the post in search results")

        # 5. A second client has the post page open; a third user likes the post.
        await reader_socket.send({"type": "sub", "topic": f"post:{post_id}", "ref": "page"})
        await reader_socket.expect(lambda f: f["type"] == "sub.ok" and f.get("ref") == "page")
        liked = (await api.post(f"/v1/posts/{post_id}/like", token=fan.token)).ok()
        assert liked["liked"] is True and liked["like_count"] == 1
        live = await reader_socket.expect(
            lambda f: f.get("topic") == f"post:{post_id}"
            and f["data"]["counts"]["likes"] == 1)
        assert live["type"] == "topic.counters"

        # 6. The author is notified of the like.
        async def liked_notification():
            items = (await api.get("/v1/notifications", token=author.token)).ok()["items"]
            return next((n for n in items if n["kind"] == "post_liked"
                         and n["target_id"] == post_id), None)

        note = await wait_until(liked_notification, timeout=10, what="the like notification")
        assert [a["id"] for a in note["actors"]] == [fan.user_id] and note["actor_count"] == 1
    finally:
        author_socket.close()
        reader_socket.close()
