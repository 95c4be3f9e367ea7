"""The gateway's envelope, errors, request ids and body handling."""
import pytest


@pytest.mark.gen_test
async def test_healthz_answers_in_the_envelope(api):
    reply = await api.get("/healthz")
    assert reply.ok() == {"status": "ok"}


@pytest.mark.gen_test
async def test_readyz_reports_each_dependency(api):
    data = (await api.get("/readyz")).ok()
    assert data == {"database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.gen_test
async def test_unknown_path_is_a_json_404(api):
    reply = await api.get("/v1/no-such-thing")
    reply.error(404, code=40400)


@pytest.mark.gen_test
async def test_dev_login_then_me(api):
    me = await api.login()
    data = (await api.get("/v1/users/me", token=me.token)).ok()
    assert data["id"] == me.user_id and data["role"] == "user"


@pytest.mark.gen_test
async def test_request_id_is_echoed_or_generated(api):
    reply = await api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert reply.headers["X-Request-ID"] == "abc-123"
    generated = (await api.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}))
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert len(generated.headers["X-Request-ID"]) == 32


@pytest.mark.gen_test
async def test_malformed_json_is_400(api):
    reply = await api.post("/v1/auth/dev-login", body=b'{"openid": ')
    reply.error(400, code=40001)


@pytest.mark.gen_test
async def test_unknown_field_is_rejected_with_a_field_error(api):
    reply = await api.post("/v1/auth/dev-login", json={"openid": "x1", "is_admin": True})
    reply.error(422, code=42200, field="is_admin")


@pytest.mark.gen_test
async def test_oversized_body_is_413(api, settings):
    big = b'{"openid": "' + b"a" * (settings.max_body_bytes + 10) + b'"}'
    reply = await api.post("/v1/auth/dev-login", body=big)
    reply.error(413, code=41300)


@pytest.mark.gen_test
async def test_missing_token_is_401(api):
    (await api.get("/v1/users/me")).error(401, code=40100)


@pytest.mark.gen_test
async def test_metrics_count_requests_by_route(api):
    await api.get("/healthz")
    text = (await api.get("/metrics")).body.decode()
    assert 'pawhome_http_requests_total{method="GET",route="/healthz",status="200"}' in text
