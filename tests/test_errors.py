"""Error handling: an unexpected exception is a bare 500 for the client and a full traceback
(with the request id) in the log; the error table is consistent; routing errors use the
envelope too."""
from __future__ import annotations

import logging

import pytest

from gateway.handler import ApiHandler, endpoint
from gateway.routing import route
from pawhome.platform import errors

ALLOWED_STATUSES = {400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 503}


class ExplodingHandler(ApiHandler):
    @endpoint(auth=False, summary="test: raises an unexpected exception")
    async def get(self) -> None:
        raise KeyError("secret-internal-detail")


@pytest.fixture
def exploding_api(api, app):
    app.add_handlers(r".*", [route("/v1/test/explode", ExplodingHandler, "test.explode").spec()])
    return api


@pytest.mark.gen_test
async def test_unexpected_exception_is_a_500_without_a_stack_trace(exploding_api, caplog):
    caplog.set_level(logging.ERROR, logger="pawhome.gateway")
    reply = await exploding_api.get("/v1/test/explode", headers={"X-Request-ID": "req-boom-1"})
    body = reply.error(500, code=50000)
    assert body["message"] == "Internal error" and body["errors"] == []
    assert b"Traceback" not in reply.body and b"secret-internal-detail" not in reply.body
    assert b"KeyError" not in reply.body
    assert reply.headers["X-Request-ID"] == "req-boom-1"

    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert len(logged) == 1
    assert logged[0].request_id == "req-boom-1"
    assert "secret-internal-detail" in caplog.text and "Traceback" in caplog.text


@pytest.mark.gen_test
async def test_client_errors_are_not_logged_as_errors(api, caplog):
    caplog.set_level(logging.ERROR, logger="pawhome.gateway")
    (await api.get("/v1/users/me")).error(401)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_every_error_code_is_unique_and_its_status_is_allowed():
    codes = [code for _cls, _status, code, _msg in errors.ERROR_TABLE]
    assert len(codes) == len(set(codes))
    classes = [cls for cls, *_ in errors.ERROR_TABLE]
    assert len(classes) == len(set(classes))
    for cls, status, code, message in errors.ERROR_TABLE:
        assert status in ALLOWED_STATUSES, cls
        assert code // 100 == status, f"{cls.__name__}: code {code} does not start with {status}"
        assert message and cls.status == status and cls.code == code


def test_every_error_class_is_in_the_table():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    in_table = {cls for cls, *_ in errors.ERROR_TABLE}
    missing = [c.__name__ for c in subclasses(errors.AppError)
               if c not in in_table and c.__module__ == errors.__name__]
    assert missing == []


@pytest.mark.gen_test
async def test_unsupported_method_is_a_405_in_the_envelope(api):
    reply = await api.delete("/healthz")
    reply.error(405, code=40500)
    assert reply.headers["Content-Type"].startswith("application/json")
