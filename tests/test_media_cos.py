"""The COS storage backend: presigned URLs signed offline (shape, expiry, a signature that
verifies), and the real SDK against a fake bucket (tests/fakes/cos.py) — HEAD, GET, PUT,
multipart — including the whole upload -> complete -> process flow with MEDIA_STORAGE=cos.
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.app import make_app
from handlers import ROUTES
from pawhome.integrations.storage import CosStorage, storage_for
from pawhome.media import processing
from pawhome.platform.resources import Resources
from settings import Settings
from tests.fakes.cos import SECRET_ID, SECRET_KEY, FakeCos, signature_problem
from tests.media_helpers import jpeg_bytes

FAKE_COS = FakeCos()


def _cos_settings(**extra) -> Settings:
    return Settings(media_storage="cos", cos_secret_id=SECRET_ID, cos_secret_key=SECRET_KEY,
                    cos_bucket="pawhome-1250000000", cos_region="ap-shanghai", **extra)


def _fake_settings() -> Settings:
    return _cos_settings(cos_domain=FAKE_COS.domain, cos_scheme="http")


def test_presigned_put_url_is_signed_offline_for_the_key_type_and_size():
    store = CosStorage(_cos_settings())
    before = int(time.time())
    upload = store.presign_put("media/2025/11/" + "a" * 32 + ".jpg", media_id=1,
                               content_type="image/jpeg", size=1234, expires=900)
    url = urlsplit(upload.url)
    assert url.scheme == "https"
    assert url.hostname == "pawhome-1250000000.cos.ap-shanghai.myqcloud.com"
    assert url.path == "/media/2025/11/" + "a" * 32 + ".jpg"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["q-sign-algorithm"] == "sha1" and query["q-ak"] == SECRET_ID
    start, end = map(int, query["q-key-time"].split(";"))
    assert start <= before and end - before in range(899, 902)  # expires in 900 s
    assert set(query["q-header-list"].split(";")) >= {"content-type", "content-length", "host"}
    assert len(query["q-signature"]) == 40
    assert (upload.method, upload.headers, upload.expires_in) == \
        ("PUT", {"Content-Type": "image/jpeg"}, 900)
    assert SECRET_KEY not in upload.url
    # The signature verifies for the declared request and not for another size or type.
    headers = {"host": url.hostname, "content-type": "image/jpeg", "content-length": "1234"}
    assert signature_problem("PUT", url.path, query, headers) is None
    assert signature_problem("PUT", url.path, query, {**headers, "content-length": "99999"})
    assert signature_problem("PUT", url.path, query, {**headers, "content-type": "text/html"})
    assert signature_problem("PUT", url.path + "x", query, headers)


def test_public_urls_use_the_bucket_domain_or_the_configured_cdn():
    key = "media/2025/11/" + "b" * 32 + "/w480.webp"
    assert CosStorage(_cos_settings()).public_url(key) == \
        f"https://pawhome-1250000000.cos.ap-shanghai.myqcloud.com/{key}"
    cdn = CosStorage(_cos_settings(media_public_base_url="https://img.example.cn/"))
    assert cdn.public_url(key) == f"https://img.example.cn/{key}"


def test_sdk_head_get_put_delete_and_multipart_against_the_fake_bucket(tmp_path: Path):
    store = CosStorage(_fake_settings())
    key = "media/2025/11/" + "c" * 32 + ".jpg"
    assert store.head(key) is None
    source = tmp_path / "in.bin"
    source.write_bytes(b"hello cos" * 100)
    store.put_file(key, source, "image/jpeg")
    assert store.head(key).size == 900
    store.download(key, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    store.delete(key)
    assert store.head(key) is None

    upload_id = store.create_multipart(key, "video/mp4")
    etags = []
    for n, chunk in enumerate((b"a" * 1000, b"b" * 500), 1):
        part = tmp_path / f"part{n}"
        part.write_bytes(chunk)
        etags.append((n, store.upload_part(key, upload_id, n, part)))
    store.complete_multipart(key, upload_id, etags)
    assert FAKE_COS.state.objects[key][0] == b"a" * 1000 + b"b" * 500
    assert FAKE_COS.state.refused == 0  # every SDK request was validly signed


def test_wrongly_signed_requests_are_refused_by_the_fake():
    store = CosStorage(Settings(media_storage="cos", cos_secret_id=SECRET_ID,
                                cos_secret_key="not-the-key", cos_domain=FAKE_COS.domain,
                                cos_scheme="http", cos_bucket="pawhome-1250000000"))
    from pawhome.integrations.storage import StorageError

    refused = FAKE_COS.state.refused
    with pytest.raises(StorageError):
        store.delete("media/2025/11/" + "d" * 32 + ".jpg")
    assert FAKE_COS.state.refused > refused


# -- the whole flow with MEDIA_STORAGE=cos ---------------------------------------------------


@pytest.fixture
def resources(io_loop):
    res = Resources(_fake_settings())
    yield res
    io_loop.run_sync(res.close)


@pytest.fixture
def app(resources):
    # No outbox relay: the run's shared worker uses the local backend and must not pick up
    # this test's media.process; the test runs the task itself.
    return make_app(resources, ROUTES)


@pytest.mark.gen_test(timeout=60)
async def test_cos_upload_complete_and_processing_end_to_end(api, resources):
    me = await api.login()
    data = jpeg_bytes(900, 600, gps=True)
    started = (await api.post("/v1/media", token=me.token, json={
        "kind": "image", "size": len(data), "content_type": "image/jpeg"})).ok(201)
    assert started["upload_url"].startswith(FAKE_COS.base_url + "/media/")
    async with httpx.AsyncClient() as client:
        wrong_size = await client.put(started["upload_url"], content=data + b"!",
                                      headers=started["headers"])
        assert wrong_size.status_code == 403  # the signed Content-Length does not match
        put = await client.put(started["upload_url"], content=data, headers=started["headers"])
    assert put.status_code == 200, put.text
    done = (await api.post(f"/v1/media/{started['media_id']}/complete", token=me.token)).ok()
    assert done["status"] == "uploaded"
    assert await processing.process_media(resources, started["media_id"]) == "ready"
    view = (await api.get(f"/v1/media/{started['media_id']}", token=me.token)).ok()
    store = storage_for(resources.settings)
    for variant in view["variants"].values():
        key = urlsplit(variant["url"]).path.lstrip("/")
        assert variant["url"] == store.public_url(key)
        body, content_type = FAKE_COS.state.objects[key]
        assert content_type == variant["content_type"] and len(body) > 100
    assert len(view["variants"]) == 6
