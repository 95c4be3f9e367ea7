"""One JSON access-log line per request, with PII masked and credentials never logged.

`access_lines` (tests/conftest.py) reads back the lines the gateway wrote.
"""
import asyncio
import logging
import os

import pytest

from gateway import accesslog
from pawhome.platform import codec
from pawhome.platform.logs import JsonFormatter, mask_pii


@pytest.mark.gen_test
async def test_each_request_logs_one_json_line_with_route_status_latency_and_user(
        api, access_lines):
    me = await api.login()
    before = len(access_lines())
    await api.get("/v1/users/me", token=me.token, headers={"X-Request-ID": "req-42"})
    [line] = access_lines()[before:]
    assert line["request_id"] == "req-42"
    assert line["logger"] == "pawhome.access" and line["level"] == "INFO"
    assert line["ts"].endswith("Z") and len(line["ts"]) == len("2026-01-01T00:00:00.000Z")
    assert line["route"] == "/v1/users/me" and line["method"] == "GET"
    assert line["status"] == 200 and line["code"] == 0
    assert line["user_id"] == me.user_id
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


@pytest.mark.gen_test
async def test_phone_numbers_in_paths_are_masked_and_tokens_never_logged(api, caplog,
                                                                         access_lines):
    caplog.set_level(logging.DEBUG)
    me = await api.login()
    await api.get("/v1/users/13800138000", token=me.token)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    lines += [codec.dumps_str(line) for line in access_lines()]
    text = "\n".join(lines)
    assert "13800138000" not in text
    assert "138****8000" in text
    assert me.token not in text and me.refresh_token not in text


@pytest.mark.gen_test
async def test_error_lines_carry_the_business_code(api, access_lines):
    await api.get("/v1/users/me")
    [line] = access_lines()
    assert line["status"] == 401 and line["code"] == 40100


@pytest.mark.gen_test
async def test_the_access_log_is_off_above_info(api, access_lines, monkeypatch):
    monkeypatch.setattr(accesslog.log, "level", logging.WARNING)
    accesslog.log.manager._clear_cache()
    try:
        await api.get("/v1/users/me")
        assert access_lines() == []
    finally:
        monkeypatch.undo()
        accesslog.log.manager._clear_cache()


@pytest.mark.gen_test
async def test_lines_are_written_in_one_batch_after_the_flush_delay():
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    writer = accesslog.LineWriter(write_fd)
    try:
        for i in range(3):
            writer.add(b'{"n":%d}\n' % i)
        with pytest.raises(BlockingIOError):
            os.read(read_fd, 1024)  # nothing written yet
        await asyncio.sleep(accesslog.FLUSH_SECONDS + 0.1)
        written = os.read(read_fd, 1024)
        assert [codec.loads(line)["n"] for line in written.splitlines()] == [0, 1, 2]
        writer.add(b"x" * accesslog.FLUSH_BYTES)  # a full batch goes out at once
        assert len(os.read(read_fd, 2 * accesslog.FLUSH_BYTES)) > 0
    finally:
        writer.flush()
        os.close(write_fd)
        os.close(read_fd)


def test_mask_pii_masks_phones_openids_and_secrets():
    assert mask_pii("call 13912345678 now") == "call 139****5678 now"
    assert "oAbCdEfGhIjKlMnOpQrStUvWx" not in mask_pii("openid=oAbCdEfGhIjKlMnOpQrStUvWx")
    assert "s3cr3t" not in mask_pii("Authorization: Bearer s3cr3t.tok.en")
    assert "abc123" not in mask_pii("GET /x?token=abc123")
