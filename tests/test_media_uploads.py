"""Chunked, resumable uploads (local backend): parts in any order, the part list to resume
from, completion only when every byte is there, the declared SHA-256 checked by the worker,
and instant completion of content already stored.
"""
from __future__ import annotations

import pytest

from pawhome.media import processing
from tests.media_helpers import png_bytes, sha256

MB = 1 << 20


async def _start(api, user, data: bytes, part_size: int = MB, **extra) -> dict:
    body = {"kind": "image", "size": len(data), "content_type": "image/png",
            "sha256": sha256(data), "part_size": part_size, **extra}
    reply = await api.post("/v1/media/uploads", json=body, token=user.token)
    return reply.json["data"] if reply.status in (200, 201) else reply.error(reply.status)


async def _put_part(api, user, media_id: int, n: int, chunk: bytes):
    return await api.request("PUT", f"/v1/media/uploads/{media_id}/parts/{n}", body=chunk,
                             token=user.token, headers={"Content-Type":
                                                        "application/octet-stream"})


def _chunks(data: bytes, size: int = MB) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.fixture(scope="module")
def big_png() -> bytes:
    data = png_bytes(1100, 1000, noise=True)
    assert 2 * MB < len(data) < 5 * MB, len(data)
    return data


@pytest.mark.gen_test(timeout=60)
async def test_interrupted_chunked_upload_resumes_from_the_part_list(api, resources, big_png):
    me = await api.login()
    started = await _start(api, me, big_png)
    media_id, chunks = started["media_id"], _chunks(big_png)
    assert started["instant"] is False and started["parts"] == len(chunks) >= 3
    # The connection "drops" after parts 1 and 3 arrived (out of order).
    for n in (3, 1):
        stored = (await _put_part(api, me, media_id, n, chunks[n - 1])).ok()
        assert stored["size"] == len(chunks[n - 1])
    listing = (await api.get(f"/v1/media/uploads/{media_id}/parts", token=me.token)).ok()
    assert [p["part_number"] for p in listing["parts"]] == [1, 3]
    assert listing["received"] == len(chunks[0]) + len(chunks[2])
    refused = (await api.post(f"/v1/media/uploads/{media_id}/complete",
                              token=me.token)).error(409, field="parts")
    assert "missing parts [2]" in refused["message"]
    # A resent part replaces the earlier one (a retry after a timeout is harmless).
    (await _put_part(api, me, media_id, 1, chunks[0])).ok()
    for n in range(2, len(chunks) + 1):
        if n != 3:
            (await _put_part(api, me, media_id, n, chunks[n - 1])).ok()
    done = (await api.post(f"/v1/media/uploads/{media_id}/complete", token=me.token)).ok()
    assert done["status"] == "uploaded"
    (await _put_part(api, me, media_id, 1, chunks[0])).error(409)  # closed for parts
    assert await processing.process_media(resources, media_id) == "ready"
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert (data["width"], data["height"], data["size"]) == (1100, 1000, len(big_png))

    # The same file again: no parts to send at all.
    other = await api.login()
    instant = await _start(api, other, big_png)
    assert instant["instant"] is True and instant["media"]["status"] == "ready"


@pytest.mark.gen_test(timeout=60)
async def test_assembled_file_with_a_wrong_sha256_fails(api, resources, big_png):
    me = await api.login()
    started = await _start(api, me, big_png, sha256="0" * 64)
    for n, chunk in enumerate(_chunks(big_png), 1):
        (await _put_part(api, me, started["media_id"], n, chunk)).ok()
    (await api.post(f"/v1/media/uploads/{started['media_id']}/complete",
                    token=me.token)).ok()
    assert await processing.process_media(resources, started["media_id"]) == "failed"
    data = (await api.get(f"/v1/media/{started['media_id']}", token=me.token)).ok()
    assert data["fail_reason"] == "content does not match the declared sha256"


@pytest.mark.gen_test
async def test_parts_are_size_limited_and_only_for_the_owner(api, settings):
    me, other = await api.login(), await api.login()
    data = b"\x89PNG" + b"\x00" * (3 * MB)
    started = await _start(api, me, data)
    media_id = started["media_id"]
    oversized = b"x" * (settings.media_part_max_bytes + 1)
    (await _put_part(api, me, media_id, 1, oversized)).error(413)
    (await _put_part(api, other, media_id, 1, b"x" * 10)).error(404)
    (await _put_part(api, me, media_id, 0, b"x" * 10)).error(422, field="part_number")
    (await _put_part(api, me, media_id, 1, b"")).error(422)
    (await api.get(f"/v1/media/uploads/{media_id}/parts", token=other.token)).error(404)
    # Parts under the minimum size (except the last) cannot be assembled.
    (await _put_part(api, me, media_id, 1, b"x" * 100)).ok()
    (await _put_part(api, me, media_id, 2, b"x" * (len(data) - 100))).ok()
    (await api.post(f"/v1/media/uploads/{media_id}/complete", token=me.token)).error(409)


@pytest.mark.gen_test
async def test_chunked_upload_parameters_are_validated(api, settings):
    me = await api.login()
    data = b"x" * (2 * MB)
    (await api.post("/v1/media/uploads", token=me.token, json={
        "kind": "video", "size": len(data), "content_type": "video/mp4",
        "sha256": sha256(data), "part_size": 1000})).error(422, field="part_size")
    (await api.post("/v1/media/uploads", token=me.token, json={
        "kind": "video", "size": len(data), "content_type": "video/mp4",
        "part_size": MB})).error(422, field="sha256")
    (await api.post("/v1/media/uploads", token=me.token, json={
        "kind": "video", "size": settings.media_video_max_bytes + 1,
        "content_type": "video/mp4", "sha256": sha256(data), "part_size": MB})).error(
        413, field="size")
    # A direct-upload media has no parts.
    direct = (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": 10, "content_type": "image/png"})).ok(201)
    (await api.get(f"/v1/media/uploads/{direct['media_id']}/parts",
                   token=me.token)).error(404)


@pytest.mark.gen_test(timeout=60)
async def test_uploads_never_completed_are_deleted_and_failed_after_a_day(api, app, resources):
    import datetime as dt

    from models.base import utcnow
    from pawhome.integrations.storage import storage_for
    from tests.event_contract import capture_events, types_of
    from tests.media_helpers import jpeg_bytes, path_of

    me = await api.login()
    # A single PUT that was sent but never completed, and a chunked upload with one part.
    data = jpeg_bytes(200, 200)
    put = (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": len(data), "content_type": "image/jpeg"})).ok(201)
    (await api.request("PUT", path_of(put["upload_url"]), body=data)).ok()
    fresh = png_bytes(1100, 1000, noise=True)  # new bytes: not an instant upload
    chunked = await _start(api, me, fresh)
    assert chunked["instant"] is False
    (await _put_part(api, me, chunked["media_id"], 1, _chunks(fresh)[0])).ok()
    store = storage_for(resources.settings)
    key = store.path_of(await _key_of(resources, put["media_id"]))
    upload_id = await _upload_id_of(resources, chunked["media_id"])
    assert key.exists() and store._parts_dir(upload_id).exists()

    assert await processing.purge_abandoned_uploads(resources) == 0  # a fresh upload is kept
    tomorrow = utcnow() + dt.timedelta(seconds=resources.settings.media_upload_abandon_seconds
                                       + 60)
    async with capture_events(app, me.user_id) as captured:
        assert await processing.purge_abandoned_uploads(resources, now=tomorrow) >= 2  # + earlier tests'
    assert types_of(await captured.events()) == ["media.failed", "media.failed"]
    assert not key.exists() and not store._parts_dir(upload_id).exists()
    for media_id in (put["media_id"], chunked["media_id"]):
        row = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
        assert row["status"] == "failed" and "abandoned" in row["fail_reason"]
    late = (await api.post(f"/v1/media/{put['media_id']}/complete", token=me.token)).ok()
    assert late["status"] == "failed"  # completing now changes nothing
    listing = (await api.get(f"/v1/media/uploads/{chunked['media_id']}/parts",
                             token=me.token)).ok()
    assert listing["parts"] == [] and listing["received"] == 0
    assert await processing.purge_abandoned_uploads(resources, now=tomorrow) == 0  # done once


async def _key_of(resources, media_id: int) -> str:
    from models.media import Media

    async with resources.db.session() as session:
        return (await session.get(Media, media_id)).storage_key


async def _upload_id_of(resources, media_id: int) -> str:
    from models.media import Media

    async with resources.db.session() as session:
        return (await session.get(Media, media_id)).upload_id
