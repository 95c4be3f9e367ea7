"""One JSON access-log line per request, with PII masked and credentials never logged."""
import logging

import pytest

from pawhome import codec
from pawhome.logs import JsonFormatter, mask_pii


def _access_records(caplog):
    return [r for r in caplog.records if r.name == "pawhome.access"]


@pytest.mark.gen_test
async def test_each_request_logs_one_json_line_with_route_status_latency_and_user(api, caplog):
    caplog.set_level(logging.INFO, logger="pawhome.access")
    me = await api.login()
    caplog.clear()
    await api.get("/v1/users/me", token=me.token, headers={"X-Request-ID": "req-42"})
    [record] = _access_records(caplog)
    line = codec.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-42"
    assert line["route"] == "/v1/users/me" and line["method"] == "GET"
    assert line["status"] == 200 and line["code"] == 0
    assert line["user_id"] == me.user_id
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0


@pytest.mark.gen_test
async def test_phone_numbers_in_paths_are_masked_and_tokens_never_logged(api, caplog):
    caplog.set_level(logging.DEBUG)
    me = await api.login()
    await api.get("/v1/users/13800138000", token=me.token)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    text = "\n".join(lines)
    assert "13800138000" not in text
    assert "138****8000" in text
    assert me.token not in text and me.refresh_token not in text


@pytest.mark.gen_test
async def test_error_lines_carry_the_business_code(api, caplog):
    caplog.set_level(logging.INFO, logger="pawhome.access")
    await api.get("/v1/users/me")
    [record] = _access_records(caplog)
    assert record.fields["status"] == 401 and record.fields["code"] == 40100


def test_mask_pii_masks_phones_openids_and_secrets():
    assert mask_pii("call 13912345678 now") == "call 139****5678 now"
    assert "oAbCdEfGhIjKlMnOpQrStUvWx" not in mask_pii("openid=oAbCdEfGhIjKlMnOpQrStUvWx")
    assert "s3cr3t" not in mask_pii("Authorization: Bearer s3cr3t.tok.en")
    assert "abc123" not in mask_pii("GET /x?token=abc123")
