"""The media task through a real Celery worker (the media queue), and video processing with
ffmpeg (skipped, with the reason, on a machine without it: .ci/run installs it).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pawhome.media import processing
from tests.event_contract import assert_events_valid, capture_events, types_of
from tests.fixtures_worker import wait_until
from tests.media_helpers import jpeg_bytes, path_of, upload

HAVE_FFMPEG = bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe not installed "
                                  "(.ci/run installs them with apt-get)")


@pytest.mark.gen_test(timeout=90)
async def test_completed_upload_goes_ready_through_the_media_worker(api, app,
                                                                   celery_worker_process):
    me = await api.login()
    async with capture_events(app, me.user_id) as captured:
        media_id = await upload(api, me, jpeg_bytes(2000, 1500, gps=True))

        async def ready():
            data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
            return data if data["status"] in ("ready", "failed") else None

        data = await wait_until(ready, timeout=60, what="media processed by the worker")
    assert data["status"] == "ready", data
    assert data["variants"]["w1080.webp"]["height"] == 810
    events = await captured.events()
    assert types_of(events) == ["media.ready"]
    assert_events_valid(events)
    assert events[0]["data"]["media_id"] == media_id


def _make_video(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc=duration=2:size=320x240:rate=10", "-c:v", "mpeg4",
                    "-metadata", "location=+31.2304+121.4737/", "-metadata", "title=secret",
                    str(path)], check=True, timeout=60)


def _tags(path: Path) -> dict:
    probe = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                            str(path)], capture_output=True, check=True, timeout=30)
    return json.loads(probe.stdout)["format"].get("tags", {})


@needs_ffmpeg
@pytest.mark.gen_test(timeout=90)
async def test_video_gets_duration_poster_and_loses_its_location(api, app, resources,
                                                                tmp_path):
    source = tmp_path / "clip.mp4"
    _make_video(source)
    assert "location" in _tags(source)  # the input really carries a location
    me = await api.login()
    media_id = await upload(api, me, source.read_bytes(), kind="video",
                            content_type="video/mp4")
    async with capture_events(app, me.user_id) as captured:
        assert await processing.process_media(resources, media_id) == "ready"
    assert_events_valid(await captured.events())
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert 1900 <= data["duration_ms"] <= 2100
    assert (data["width"], data["height"]) == (320, 240)
    assert sorted(data["variants"]) == ["poster.w320.jpg", "poster.w320.webp", "video.mp4"]
    video = await api.request("GET", path_of(data["variants"]["video.mp4"]["url"]))
    assert video.status == 200
    served = tmp_path / "served.mp4"
    served.write_bytes(video.body)
    tags = _tags(served)
    assert "location" not in tags and "title" not in tags, tags
    poster = await api.request("GET", path_of(data["variants"]["poster.w320.jpg"]["url"]))
    assert poster.status == 200 and poster.body[:3] == b"\xff\xd8\xff"


@needs_ffmpeg
@pytest.mark.gen_test(timeout=60)
async def test_corrupt_video_fails_with_a_reason(api, resources):
    me = await api.login()
    garbage = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x13" * 5000
    media_id = await upload(api, me, garbage, kind="video", content_type="video/mp4")
    assert await processing.process_media(resources, media_id) == "failed"
    data = (await api.get(f"/v1/media/{media_id}", token=me.token)).ok()
    assert data["fail_reason"] in ("video is corrupt or unreadable",
                                   "not a video (no video stream)")
