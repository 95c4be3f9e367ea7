"""Virtual pets from a photo (docs/virtual-pet.md "Generation"): a real cat photo through the
media worker and the `ai` worker with its progress live on the user's stream, the same photo
making the same pet, photos that cannot make one, other users' media and generations, the
daily limit, and the sweep of results nobody adopted.
"""
from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from models.base import utcnow
from models.virtual_pets import PetGeneration
from pawhome.virtualpet import generation
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.fixtures_worker import wait_until
from tests.generation_support import (
    KITTEN_PHOTO,
    cat_photo,
    finished,
    stored_photo,
    written_generation,
)
from tests.media_helpers import elf_executable, path_of, pixel_bomb_png, upload

STAGES = ["downloading", "detecting", "measuring", "parameters", "rendering", "storing"]


async def _ready(api, user, media_id: int) -> None:
    async def check():
        data = (await api.get(f"/v1/media/{media_id}", token=user.token)).ok()
        assert data["status"] != "failed", data
        return data["status"] == "ready"
    await wait_until(check, timeout=60, what="the photo processed by the media worker")


@pytest.mark.gen_test(timeout=150)
async def test_a_cat_photo_becomes_a_pet_on_the_ai_worker_with_live_progress(
        api, app, celery_worker_process):
    me = await api.login()
    media_id = await upload(api, me, cat_photo())
    await _ready(api, me, media_id)
    async with capture_events(app, me.user_id) as captured:
        queued = (await api.post("/v1/virtual-pets/generations",
                                 json={"media_id": media_id,
                                       "hints": {"species": "cat", "name_ideas": ["Chelsea"]}},
                                 token=me.token)).ok(202)
        assert queued["status"] == "queued" and queued["percent"] == 0
        data = await finished(api, me, queued["id"])
        events = await captured.events()
    assert data["status"] == "done", data
    assert data["provider"] == "baseline" and data["percent"] == 100
    params = data["params"]
    assert params["species"] == "cat" and params["base_model"].startswith("cat_")
    assert params["markings"][0] in ("solid", "stripes", "spots", "patches")
    # A brown tabby: the main fur colour is warm (red over green over blue).
    main = params["colours"][0]
    red, green, blue = (int(main[i:i + 2], 16) for i in (1, 3, 5))
    assert red > green > blue, params["colours"]
    assert data["expires_at"] > data["finished_at"]

    assert_events_valid(events)
    progress = [e["data"] for e in events if e["type"] == "generation.progress"]
    assert [p["stage"] for p in progress] == STAGES
    assert [p["percent"] for p in progress] == sorted(p["percent"] for p in progress)
    assert types_of(events)[-1] == "generation.done"
    done = events[-1]["data"]
    assert done["generation_id"] == queued["id"] and done["params"] == params
    assert done["sprite_url"] == data["sprite_url"]

    for url, side in ((data["sprite_url"], 512), (data["thumb_url"], 128)):
        served = await api.get(path_of(url))
        assert served.status == 200
        picture = Image.open(io.BytesIO(served.body))
        assert (picture.format, picture.mode, picture.size) == ("WEBP", "RGBA", (side, side))


@pytest.mark.gen_test(timeout=120)
async def test_the_same_photo_makes_the_same_pet(api, resources, celery_worker_process):
    me = await api.login()
    first = await stored_photo(resources, me.user_id, cat_photo())
    second = await stored_photo(resources, me.user_id, cat_photo())
    ids = [(await api.post("/v1/virtual-pets/generations", json={"media_id": m},
                           token=me.token)).ok(202)["id"] for m in (first, second)]
    results = [await finished(api, me, i) for i in ids]
    assert [r["status"] for r in results] == ["done", "done"], results
    assert results[0]["params"] == results[1]["params"]
    assert results[0]["personality"] == results[1]["personality"]
    assert results[0]["sprite_url"] != results[1]["sprite_url"]  # stored apart


@pytest.mark.gen_test(timeout=120)
async def test_a_kitten_facing_the_camera_is_a_cat_by_its_face_without_a_hint(
        api, resources, celery_worker_process):
    me = await api.login()
    photo = await stored_photo(resources, me.user_id, KITTEN_PHOTO.read_bytes(),
                               width=1280, height=720)
    queued = (await api.post("/v1/virtual-pets/generations", json={"media_id": photo},
                             token=me.token)).ok(202)
    data = await finished(api, me, queued["id"])
    assert data["status"] == "done", data
    params = data["params"]
    assert params["species"] == "cat" and params["base_model"].startswith("cat_")
    assert params["features"]["found_by"] == "cat_face"


@pytest.mark.gen_test(timeout=120)
async def test_a_file_that_is_no_image_and_a_huge_image_fail_with_the_reason(
        api, app, resources, celery_worker_process):
    me = await api.login()
    # Written directly: the media worker would have refused both; the generation checks again.
    not_image = await stored_photo(resources, me.user_id, elf_executable())
    huge = await stored_photo(resources, me.user_id, pixel_bomb_png(9000, 6000),
                              extension="png", content_type="image/png")
    async with capture_events(app, me.user_id) as captured:
        ids = [(await api.post("/v1/virtual-pets/generations", json={"media_id": m},
                               token=me.token)).ok(202)["id"] for m in (not_image, huge)]
        results = [await finished(api, me, i) for i in ids]
        events = await captured.events()
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert results[0]["reason"] == "not an image (detected application/x-executable)"
    assert results[1]["reason"].startswith("image has too many pixels"), results[1]
    assert results[0]["params"] is None and results[0]["sprite_url"] is None
    assert_events_valid(events)
    failed = {e["data"]["generation_id"]: e["data"]["reason"] for e in events
              if e["type"] == "generation.failed"}
    assert failed == {ids[0]: results[0]["reason"], ids[1]: results[1]["reason"]}


@pytest.mark.gen_test
async def test_other_users_media_and_generations_are_not_found(api, resources):
    me, other = await api.login(), await api.login()
    theirs = await stored_photo(resources, other.user_id, cat_photo())
    (await api.post("/v1/virtual-pets/generations", json={"media_id": theirs},
                    token=me.token)).error(404)
    (await api.post("/v1/virtual-pets/generations", json={"media_id": 2**62},
                    token=me.token)).error(404)
    their_generation = await written_generation(resources, other.user_id, theirs)
    (await api.get(f"/v1/virtual-pets/generations/{their_generation}",
                   token=me.token)).error(404)
    (await api.get(f"/v1/virtual-pets/generations/{their_generation}",
                   token=other.token)).ok()


@pytest.mark.gen_test
async def test_a_video_or_an_unfinished_upload_is_refused_and_nothing_is_queued(api, resources):
    me = await api.login()
    video = await stored_photo(resources, me.user_id, b"\x00" * 64, extension="mp4",
                               content_type="video/mp4", kind="video")
    pending = await stored_photo(resources, me.user_id, cat_photo(), status="processing")
    for media_id, why in ((video, "is a video, not an image"),
                          (pending, "is not ready yet (processing)")):
        body = (await api.post("/v1/virtual-pets/generations", json={"media_id": media_id},
                               token=me.token)).error(422, code=42260, field="media_id")
        assert body["errors"][0]["message"] == why
    (await api.post("/v1/virtual-pets/generations", json={"media_id": video, "hints":
                    {"species": "dragon"}}, token=me.token)).error(422, field="hints.species")
    async with resources.db.session() as session:
        mine = await session.execute(PetGeneration.__table__.select().where(
            PetGeneration.user_id == me.user_id))
        assert mine.all() == []


@pytest.mark.gen_test
async def test_the_daily_limit_counts_the_shanghai_day(api, resources):
    me = await api.login()
    photo = await stored_photo(resources, me.user_id, cat_photo())
    limit = resources.settings.vpet_generations_per_day
    # Written directly, failed (no task runs): today's, and one from two days ago.
    for _ in range(limit):
        await written_generation(resources, me.user_id, photo, status="failed")
    await written_generation(resources, me.user_id, photo, status="failed",
                             created_at=utcnow() - dt.timedelta(days=2))
    reply = await api.post("/v1/virtual-pets/generations", json={"media_id": photo},
                           token=me.token)
    body = reply.error(429, code=42903)
    assert str(limit) in body["message"]
    assert 0 < int(reply.headers["Retry-After"]) <= 24 * 3600 + 1


@pytest.mark.gen_test
async def test_unadopted_results_expire_after_their_time(resources):
    past = utcnow() - dt.timedelta(minutes=1)
    stale = await written_generation(resources, 1, expires_at=past)
    fresh = await written_generation(resources, 1)
    running = await written_generation(resources, 1, status="running", expires_at=past)
    assert await generation.expire_generations(resources) >= 1
    async with resources.db.session() as session:
        states = {g: (await session.get(PetGeneration, g)).status
                  for g in (stale, fresh, running)}
    assert states == {stale: "expired", fresh: "done", running: "running"}
