"""The OpenAPI document covers every route and method, is valid OpenAPI 3.1, is served at
/v1/openapi.json, and docs/ holds exactly what the generator produces."""
from __future__ import annotations

import json

import pytest
import tornado.websocket
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict, Field

from gateway import openapi
from gateway.handler import ApiHandler, endpoint
from gateway.routing import route
from handlers import ROUTES
from pawhome.platform import codec


class AdjustBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delta: int = Field(ge=-1000, le=1000)


class AdjustResult(BaseModel):
    balance: int


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: int = Field(1, ge=1)
    q: str


class PointsHandler(ApiHandler):
    @endpoint(roles=("admin",), body=AdjustBody, response=AdjustResult, idempotent=True,
              tags=("points",), summary="Adjust a user's points")
    async def post(self, user_id: int) -> None: ...

    @endpoint(query=ListQuery, summary="List ledger entries", tags=("points",))
    async def get(self, user_id: int) -> None: ...


class ForgottenHandler(ApiHandler):
    async def delete(self) -> None: ...


SAMPLE = route("/v1/test/users/{user_id:int}/points", PointsHandler, "test.points")


@pytest.fixture(scope="module")
def document():
    return openapi.build_document(ROUTES)


def test_every_route_and_method_in_the_route_table_is_documented(document):
    assert ROUTES, "route table is empty"
    for r in ROUTES:
        assert r.openapi_path in document["paths"], f"{r.template} ({r.name}) missing"
        methods = openapi.operations(r)
        assert methods or issubclass(r.handler, tornado.websocket.WebSocketHandler), \
            f"{r.name} has no endpoints"
        for method in methods:
            assert method in document["paths"][r.openapi_path], f"{method} {r.template}"
    assert openapi.undocumented_methods(ROUTES) == []


def test_a_method_without_endpoint_is_reported():
    missing = openapi.undocumented_methods([route("/v1/x", ForgottenHandler, "x.forgotten")])
    assert missing == ["DELETE /v1/x (x.forgotten)"]


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_document_with_a_richer_endpoint_is_valid_and_complete():
    doc = openapi.build_document([*list(ROUTES), SAMPLE])
    validate(doc)
    post = doc["paths"]["/v1/test/users/{user_id}/points"]["post"]
    params = {p["name"]: p for p in post["parameters"]}
    assert params["user_id"]["in"] == "path" and params["user_id"]["schema"]["type"] == "integer"
    assert params["Idempotency-Key"]["in"] == "header"
    assert post["security"] == [{"bearerAuth": []}] and post["x-roles"] == ["admin"]
    assert {"401", "403", "404", "409", "413", "422", "429", "503"} <= set(post["responses"])
    body_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert body["additionalProperties"] is False and "delta" in body["required"]
    success = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert success["allOf"][1]["properties"]["data"]["$ref"].endswith("/AdjustResult")
    get = doc["paths"]["/v1/test/users/{user_id}/points"]["get"]
    query = {p["name"]: p for p in get["parameters"] if p["in"] == "query"}
    assert query["q"]["required"] is True and query["page"]["required"] is False
    assert query["page"]["schema"]["minimum"] == 1
    assert "Idempotency-Key" not in {p["name"] for p in get["parameters"]}


def test_auth_endpoints_declare_bearer_and_401_public_ones_do_not(document):
    me = document["paths"]["/v1/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}] and "401" in me["responses"]
    health = document["paths"]["/healthz"]["get"]
    assert health["security"] == [] and "401" not in health["responses"]
    login = document["paths"]["/v1/auth/dev-login"]["post"]
    assert {"400", "413", "422", "429"} <= set(login["responses"])
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_error_responses_list_the_business_codes(document):
    responses = document["components"]["responses"]
    assert "40101" in responses["Error401"]["description"]
    assert "Retry-After" in responses["Error429"]["headers"]


def test_docs_openapi_json_is_up_to_date(document):
    on_disk = json.loads((openapi.DOCS / "openapi.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(openapi.render_json(document)), \
        "docs/openapi.json is stale: run `make openapi`"


def test_docs_errors_md_is_up_to_date():
    on_disk = (openapi.DOCS / "errors.md").read_text(encoding="utf-8")
    assert on_disk == openapi.render_errors_markdown(), "docs/errors.md is stale: make openapi"


@pytest.mark.gen_test
async def test_document_is_served_without_auth(api, document):
    reply = await api.get("/v1/openapi.json")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    assert codec.loads(reply.body) == json.loads(openapi.render_json(document))
    again = await api.get("/v1/openapi.json")
    assert again.body == reply.body
