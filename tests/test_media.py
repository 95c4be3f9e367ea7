"""The media pipeline with the local storage backend: direct upload -> complete -> the
media task -> ready (variants without EXIF/GPS, upright) or failed with a reason; instant
upload; serving files with Range; require_ready and image DMs.

The task runs directly here (`processing.process_media`, the function the Celery task calls);
tests/test_media_worker.py runs it through a real worker.
"""
from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select, update

from models.media import Media
from pawhome.media import processing
from pawhome.media import uploads as media
from pawhome.messaging import chat
from pawhome.platform.errors import ValidationFailed
from settings import Settings
from tests.event_contract import CapturedEvents, assert_events_valid, capture_events, types_of
from tests.media_helpers import (
    GPS_IFD,
    elf_executable,
    jpeg_bytes,
    path_of,
    pixel_bomb_png,
    png_bytes,
    sha256,
    start_upload,
    upload,
)


@pytest.fixture(autouse=True)
def image_messages_enabled():
    # Another test module unregisters chat checks it installed; ours must be in place.
    media.register_chat_attachment_check()
    yield


async def _row(resources, media_id: int) -> Media:
    async with resources.db.session() as session:
        return (await session.execute(select(Media).where(Media.id == media_id))).scalar_one()


async def _fetch(api, url: str, **headers):
    return await api.request("GET", path_of(url), headers=headers)


async def _image_of(api, url: str) -> Image.Image:
    reply = await _fetch(api, url)
    assert reply.status == 200, reply.body[:200]
    return Image.open(io.BytesIO(reply.body))


# -- the happy path ----------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_uploaded_photo_becomes_ready_with_variants_and_no_gps(api, app, resources):
    me = await api.login()
    original = jpeg_bytes(1600, 1200, gps=True)
    assert GPS_IFD in Image.open(io.BytesIO(original)).getexif()  # the input really has GPS
    media_id = await upload(api, me, original)
    captured = CapturedEvents(app, me.user_id)  # the whole stream: see _failed_reason
    assert await processing.process_media(resources, media_id) == "ready"
    events = await captured.events()
    assert types_of(events) == ["media.ready"]
    assert_events_valid(events)

    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert data["status"] == "ready" and data["fail_reason"] is None
    assert (data["width"], data["height"], data["content_type"]) == (1600, 1200, "image/jpeg")
    assert sorted(data["variants"]) == sorted(f"w{w}.{ext}" for w in (240, 480, 1080)
                                              for ext in ("jpg", "webp"))
    assert events[0]["data"]["variants"] == data["variants"]
    for name, variant in data["variants"].items():
        image = await _image_of(api, variant["url"])
        assert image.size == (variant["width"], variant["height"]), name
        assert image.width == int(name[1:].split(".")[0])
        assert image.format == ("JPEG" if name.endswith(".jpg") else "WEBP")
        assert not image.getexif(), f"{name} still carries EXIF"
        assert "exif" not in image.info
    row = await _row(resources, media_id)
    assert row.sha256 == sha256(original) and row.ready_at is not None


@pytest.mark.gen_test(timeout=60)
async def test_exif_orientation_is_applied_so_variants_are_upright(api, resources):
    me = await api.login()
    # Stored 400x200 (red left, blue right) with "rotate 90 clockwise to display".
    media_id = await upload(api, me, jpeg_bytes(400, 200, orientation=6, split_colours=True))
    assert await processing.process_media(resources, media_id) == "ready"
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert (data["width"], data["height"]) == (200, 400)
    image = (await _image_of(api, data["variants"]["w200.jpg"]["url"])).convert("RGB")
    assert image.size == (200, 400)
    top, bottom = image.getpixel((100, 50)), image.getpixel((100, 350))
    assert top[0] > 200 and top[2] < 60, top  # red is on top once turned
    assert bottom[2] > 200 and bottom[0] < 60, bottom


@pytest.mark.gen_test(timeout=60)
async def test_small_image_is_never_upscaled(api, resources):
    me = await api.login()
    media_id = await upload(api, me, png_bytes(300, 200), content_type="image/png")
    assert await processing.process_media(resources, media_id) == "ready"
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert sorted(data["variants"]) == ["w240.jpg", "w240.webp", "w300.jpg", "w300.webp"]
    assert data["variants"]["w300.webp"]["height"] == 200


@pytest.mark.gen_test(timeout=60)
async def test_rerunning_the_task_on_a_ready_media_changes_nothing(api, app, resources):
    me = await api.login()
    media_id = await upload(api, me, jpeg_bytes(500, 500))
    assert await processing.process_media(resources, media_id) == "ready"
    before = await _row(resources, media_id)
    async with capture_events(app, me.user_id) as captured:
        assert await processing.process_media(resources, media_id) == "ready"
    assert await captured.events() == []  # no second media.ready
    after = await _row(resources, media_id)
    assert (after.variants, after.ready_at) == (before.variants, before.ready_at)


# -- hostile and broken files ------------------------------------------------------------------


async def _failed_reason(api, app, resources, me, media_id: int) -> str:
    """Process the upload here; why it failed. The complete call handed media.process to
    the broker too, and the session's worker (when an earlier test started it) may get
    there first: processing is idempotent (one media.failed either way), so the fresh
    user's whole event stream is read rather than the events after a mark."""
    captured = CapturedEvents(app, me.user_id)  # not marked: from the stream's start
    assert await processing.process_media(resources, media_id) == "failed"
    events = await captured.events()
    assert types_of(events) == ["media.failed"]
    assert_events_valid(events)
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert data["status"] == "failed" and data["variants"] == {}
    assert events[0]["data"] == {"media_id": media_id, "reason": data["fail_reason"]}
    return data["fail_reason"]


@pytest.mark.gen_test(timeout=60)
async def test_renamed_executable_is_rejected_as_not_an_image(api, app, resources):
    me = await api.login()
    media_id = await upload(api, me, elf_executable(), content_type="image/jpeg")
    reason = await _failed_reason(api, app, resources, me, media_id)
    assert reason.startswith("not an image") and "executable" in reason, reason


@pytest.mark.gen_test(timeout=60)
async def test_20000x20000_png_is_rejected_by_the_pixel_limit(api, app, resources):
    me = await api.login()
    bomb = pixel_bomb_png(20000, 20000)
    assert len(bomb) < 2000
    media_id = await upload(api, me, bomb, content_type="image/png")
    reason = await _failed_reason(api, app, resources, me, media_id)
    assert "pixels" in reason and "50 MP" in reason, reason


@pytest.mark.gen_test(timeout=60)
async def test_truncated_jpeg_is_rejected_as_corrupt(api, app, resources):
    me = await api.login()
    whole = jpeg_bytes(800, 600)
    media_id = await upload(api, me, whole[: len(whole) // 2])
    assert await _failed_reason(api, app, resources, me, media_id) == \
        "image is corrupt or truncated"


@pytest.mark.gen_test(timeout=60)
async def test_a_video_declared_as_an_image_is_rejected(api, app, resources):
    me = await api.login()
    fake_mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 500
    media_id = await upload(api, me, fake_mp4, content_type="image/jpeg")
    reason = await _failed_reason(api, app, resources, me, media_id)
    assert reason == "not an image (detected video/mp4)"


@pytest.mark.gen_test(timeout=60)
async def test_content_that_does_not_match_its_declared_sha256_fails(api, app, resources):
    """Otherwise anyone could plant a file under another file's hash for instant uploads."""
    me = await api.login()
    real, claimed = jpeg_bytes(300, 300), jpeg_bytes(310, 310)
    started = (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": len(real), "content_type": "image/jpeg",
        "sha256": sha256(claimed)})).ok(201)
    (await api.request("PUT", path_of(started["upload_url"]), body=real)).ok()
    (await api.post(f"/v1/media/{started['media_id']}/complete", token=me.token)).ok()
    reason = await _failed_reason(api, app, resources, me, started["media_id"])
    assert reason == "content does not match the declared sha256"
    other = await api.login()
    again = (await api.post("/v1/media", token=other.token, json={
        "kind": "image", "size": len(real), "content_type": "image/jpeg",
        "sha256": sha256(claimed)})).ok(201)
    assert again["instant"] is False


@pytest.mark.gen_test(timeout=60)
async def test_video_without_ffmpeg_fails_with_a_clear_reason(api, resources):
    from pawhome.platform.resources import Resources

    me = await api.login()
    fake_mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 500
    started = await start_upload(api, me, fake_mp4, kind="video", content_type="video/mp4")
    (await api.request("PUT", path_of(started["upload_url"]), body=fake_mp4)).ok()
    media_id = started["media_id"]
    # Marked uploaded without `complete`, so no media.process is queued: the run's shared
    # worker (which has ffmpeg) must not process it first.
    async with resources.db.session() as session, session.begin():
        await session.execute(update(Media).where(Media.id == media_id)
                              .values(status="uploaded"))
    without = Resources(Settings(media_ffmpeg_path="/nonexistent/ffmpeg"))
    try:
        assert await processing.process_media(without, media_id) == "failed"
    finally:
        await without.close()
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert data["fail_reason"] == "ffmpeg not installed"


# -- the upload contract -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_declared_size_and_type_are_checked_before_any_upload(api, settings):
    me = await api.login()
    too_big = settings.media_video_max_bytes + 1
    (await api.post("/v1/media", token=me.token, json={
        "kind": "video", "size": too_big, "content_type": "video/mp4"})).error(413, field="size")
    (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": 10, "content_type": "application/x-msdownload"})).error(
        422, field="content_type")
    (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": 10, "content_type": "image/png", "sha256": "xyz"})).error(
        422, field="sha256")
    (await api.post("/v1/media", json={"kind": "image", "size": 1,
                                       "content_type": "image/png"})).error(401)


@pytest.mark.gen_test
async def test_upload_url_accepts_only_its_own_upload_within_the_declared_size(api):
    me = await api.login()
    data = jpeg_bytes(200, 200)
    started = await start_upload(api, me, data)
    url = path_of(started["upload_url"])
    (await api.request("PUT", url, body=data + b"x" * 10)).error(413)
    (await api.request("PUT", url[:-3] + "abc", body=data)).error(404)  # forged signature
    (await api.post(f"/v1/media/{started['media_id']}/complete",
                    token=me.token)).error(409)  # nothing uploaded yet
    (await api.request("PUT", url, body=data)).ok()
    other = await api.login()
    (await api.post(f"/v1/media/{started['media_id']}/complete", token=other.token)).error(404)
    (await api.post(f"/v1/media/{started['media_id']}/complete", token=me.token)).ok()
    # Once completed, the URL cannot replace the file being processed.
    (await api.request("PUT", url, body=jpeg_bytes(100, 100))).error(409)
    again = (await api.post(f"/v1/media/{started['media_id']}/complete",
                            token=me.token)).ok()
    # Repeating complete is a no-op that reports where processing is; a worker may already
    # have picked the upload up, so any state past "uploading" is right.
    assert again["status"] in ("uploaded", "processing", "ready", "failed")


@pytest.mark.gen_test
async def test_complete_refuses_an_object_of_another_size(api):
    me = await api.login()
    data = jpeg_bytes(200, 200)
    started = (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": len(data) + 5, "content_type": "image/jpeg"})).ok(201)
    (await api.request("PUT", path_of(started["upload_url"]), body=data)).ok()
    (await api.post(f"/v1/media/{started['media_id']}/complete", token=me.token)).error(
        409, field="size")


@pytest.mark.gen_test
async def test_another_users_media_is_not_found(api):
    me, other = await api.login(), await api.login()
    started = await start_upload(api, me, b"whatever")
    (await api.get(f"/v1/media/{started['media_id']}", token=other.token)).error(404)
    (await api.get(f"/v1/media/{started['media_id']}", token=me.token)).ok()


# -- instant upload --------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_known_content_uploads_instantly_as_a_ready_media(api, resources):
    first, second = await api.login(), await api.login()
    data = jpeg_bytes(700, 500, gps=True)
    # Before the first copy is processed, the hash is not trusted yet: a normal upload.
    pending = await upload(api, first, data, with_sha=True)
    early = await start_upload(api, second, data, with_sha=True)
    assert early["instant"] is False
    assert await processing.process_media(resources, pending) == "ready"

    reply = await api.post("/v1/media", token=second.token, json={
        "kind": "image", "size": len(data), "content_type": "image/jpeg",
        "sha256": sha256(data)})
    instant = reply.ok(200)
    assert instant["instant"] is True and "upload_url" not in instant
    mine = (await api.get(f"/v1/media/{instant['media_id']}", token=second.token)).ok()
    theirs = (await api.get(f"/v1/media/{pending}", token=first.token)).ok()
    assert mine["status"] == "ready" and instant["media_id"] != pending
    assert mine["variants"] == theirs["variants"] and mine["width"] == 700
    async with resources.db.session() as session:
        [row] = await media.require_ready(session, second.user_id, [instant["media_id"]])
    assert row.owner_id == second.user_id
    # Same hash, other kind or size: no shortcut.
    other_kind = (await api.post("/v1/media", token=second.token, json={
        "kind": "video", "size": len(data), "content_type": "video/mp4",
        "sha256": sha256(data)})).ok(201)
    assert other_kind["instant"] is False


# -- serving -------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_served_variant_answers_range_requests(api, resources):
    me = await api.login()
    media_id = await upload(api, me, jpeg_bytes(1200, 900))
    await processing.process_media(resources, media_id)
    variant = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()["variants"][
        "w1080.jpg"]
    whole = await _fetch(api, variant["url"])
    assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "image/jpeg"
    part = await _fetch(api, variant["url"], Range="bytes=100-199")
    assert part.status == 206 and part.body == whole.body[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.body)}"
    tail = await _fetch(api, variant["url"], Range="bytes=-50")
    assert tail.status == 206 and tail.body == whole.body[-50:]
    beyond = await _fetch(api, variant["url"], Range=f"bytes={len(whole.body) + 10}-")
    assert beyond.status == 416


@pytest.mark.gen_test(timeout=60)
async def test_originals_and_paths_outside_the_variants_are_not_served(api, resources):
    me = await api.login()
    media_id = await upload(api, me, jpeg_bytes(300, 300, gps=True))
    await processing.process_media(resources, media_id)
    row = await _row(resources, media_id)
    base = "/v1/media/files/"
    assert (await api.get(base + row.storage_key)).status == 404  # the original keeps GPS
    assert (await api.get(base + "../settings.py")).status == 404
    assert (await api.get(base + "media/%2e%2e/%2e%2e/pawhome.db")).status == 404
    assert (await api.get(base + row.storage_key.rsplit(".", 1)[0] + "/w999.jpg")).status \
        == 404


# -- attaching media -------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_require_ready_refuses_what_is_not_the_owners_ready_media(api, resources):
    me, other = await api.login(), await api.login()
    mine = await upload(api, me, jpeg_bytes(300, 300))
    await processing.process_media(resources, mine)
    theirs = await upload(api, other, jpeg_bytes(300, 300))
    await processing.process_media(resources, theirs)
    waiting = (await start_upload(api, me, b"x" * 10))["media_id"]
    broken = await upload(api, me, elf_executable())
    await processing.process_media(resources, broken)

    async with resources.db.session() as session:
        rows = await media.require_ready(session, me.user_id, [mine], kind="image")
        assert [r.id for r in rows] == [mine]
        with pytest.raises(ValidationFailed) as refused:
            await media.require_ready(session, me.user_id,
                                      [mine, theirs, waiting, broken, 10**15, mine])
        fields = {e["field"]: e["message"] for e in refused.value.errors}
        assert set(fields) == {"media_ids.1", "media_ids.2", "media_ids.3", "media_ids.4",
                               "media_ids.5"}
        assert fields["media_ids.1"] == "no such media of yours"
        assert "not ready" in fields["media_ids.2"]
        assert fields["media_ids.3"].startswith("failed: not an image")
        assert "twice" in fields["media_ids.5"]
        with pytest.raises(ValidationFailed) as wrong_kind:
            await media.require_ready(session, me.user_id, [mine], kind="video")
        assert wrong_kind.value.errors[0]["message"] == "is a image, not a video"


@pytest.mark.gen_test(timeout=60)
async def test_image_message_carries_the_senders_ready_image(api, resources):
    a, b = await api.login(), await api.login()
    conversation = (await api.post("/v1/conversations", json={"to_user_id": b.user_id},
                                   token=a.token)).ok()["id"]
    url = f"/v1/conversations/{conversation}/messages"
    photo = await upload(api, a, jpeg_bytes(1500, 1000))
    # Not processed yet: refused.
    (await api.post(url, token=a.token, json={"client_msg_id": "img-1", "kind": "image",
                                              "media_id": photo})).error(
        422, code=42210, field="media_id")
    await processing.process_media(resources, photo)
    ack = (await api.post(url, token=a.token, json={"client_msg_id": "img-2", "kind": "image",
                                                    "media_id": photo})).ok()
    # Someone else's media id is refused even when it is ready.
    (await api.post(url, token=b.token, json={"client_msg_id": "img-3", "kind": "image",
                                              "media_id": photo})).error(
        422, code=42210, field="media_id")
    page = (await api.get(url, token=b.token)).ok()
    [message] = [m for m in page["items"] if m["seq"] == ack["seq"]]
    content = message["content"]
    assert message["kind"] == "image" and content["media_id"] == photo
    assert content["url"].endswith("/w1080.webp") and content["thumb_url"].endswith("/w240.webp")
    assert (content["width"], content["height"]) == (1500, 1000)
    assert chat._attachment_checks["image"] is media.check_chat_image


@pytest.mark.gen_test(timeout=60)
async def test_large_rotated_photo_records_its_full_upright_size(api, resources):
    """Large JPEGs are decoded at a reduced scale (still above the largest variant); the
    recorded size is the original's, upright."""
    me = await api.login()
    media_id = await upload(api, me, jpeg_bytes(4400, 2400, orientation=6, split_colours=True))
    assert await processing.process_media(resources, media_id) == "ready"
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert (data["width"], data["height"]) == (2400, 4400)
    largest = data["variants"]["w1080.webp"]
    assert (largest["width"], largest["height"]) == (1080, 1980)
    image = (await _image_of(api, largest["url"])).convert("RGB")
    assert image.size == (1080, 1980) and image.getpixel((540, 100))[0] > 200  # red on top
