"""The OpenAPI 3.1 document, generated from the route table and each method's `@endpoint`.

Nothing here is written by hand per endpoint: paths come from `handlers.ROUTES`, parameters
and bodies from the pydantic models the endpoint declares, error responses from what the
endpoint enforces (auth, roles, body, rate limits, idempotency) and `pawhome.platform.errors`.
Served at GET /v1/openapi.json; `python -m gateway.openapi` (make openapi) writes
docs/openapi.json and docs/errors.md, and a test fails when either is stale.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import tornado.web
import tornado.websocket
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from gateway.control_characters import SCHEMA_PATTERN
from gateway.handler import ApiHandler, EndpointSpec, endpoint
from gateway.ratelimit import rules_for
from gateway.routing import Route
from pawhome.platform import codec, errors

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
DOCS = Path(__file__).resolve().parent.parent / "docs"
COMPONENTS = "#/components/schemas/"


@dataclass(frozen=True)
class RawBody:
    """`@endpoint(response=RawBody("text/plain"))`: the reply is not in the JSON envelope."""
    media_type: str
    schema: dict = field(default_factory=dict)


def operations(route: Route) -> dict[str, EndpointSpec]:
    """The HTTP methods a route answers, each with its endpoint contract."""
    out = {}
    for method in HTTP_METHODS:
        spec = getattr(getattr(route.handler, method, None), "endpoint_spec", None)
        if spec is not None:
            out[method] = spec
    return out


def undocumented_methods(routes: Iterable[Route]) -> list[str]:
    """HTTP methods a REST handler implements without `@endpoint` (so without a contract)."""
    missing = []
    for route in routes:
        if issubclass(route.handler, tornado.websocket.WebSocketHandler):
            continue
        for method in HTTP_METHODS:
            impl = getattr(route.handler, method, None)
            if impl is getattr(tornado.web.RequestHandler, method) or impl is None:
                continue
            if getattr(impl, "endpoint_spec", None) is None:
                missing.append(f"{method.upper()} {route.template} ({route.name})")
    return missing


# -- schemas ---------------------------------------------------------------------------------
class _RequestStrings(GenerateJsonSchema):
    """Request strings (validation mode) carry the control-character rule the gateway
    enforces on every body and query string (gateway/control_characters.py), unless they
    have a pattern of their own (each of which refuses control characters too: checked by
    tests/test_control_characters.py); replies are described as they are."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        json_schema = super().str_schema(schema)
        if self.mode == "validation" and "pattern" not in json_schema:
            json_schema["pattern"] = SCHEMA_PATTERN
        return json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # pydantic turns a key pattern into patternProperties, which would let keys that
        # do not match through unchecked; say "every key matches, every value is ..." instead.
        json_schema = super().dict_schema(schema)
        by_pattern = json_schema.get("patternProperties", {})
        if list(by_pattern) == [SCHEMA_PATTERN]:
            del json_schema["patternProperties"]
            json_schema["propertyNames"] = {"pattern": SCHEMA_PATTERN}
            json_schema["additionalProperties"] = by_pattern[SCHEMA_PATTERN]
        return json_schema


class _Schemas:
    """Collects every type the document needs and renders them in one pydantic pass, so
    shared models become one component and same-named models get distinct names."""

    def __init__(self) -> None:
        self.inputs: list[tuple[Any, JsonSchemaMode, pydantic.TypeAdapter[Any]]] = []
        self.keys: dict[tuple[int, str], Any] = {}

    def add(self, typ: Any, mode: JsonSchemaMode) -> tuple[int, str] | None:
        if typ is None or isinstance(typ, RawBody):
            return None
        key = (id(typ), mode)
        if key not in self.keys:
            self.keys[key] = typ
            self.inputs.append((key, mode, pydantic.TypeAdapter(typ)))
        return key

    def render(self) -> tuple[dict, dict]:
        if not self.inputs:
            return {}, {}
        by_key, defs = pydantic.TypeAdapter.json_schemas(
            self.inputs, ref_template=COMPONENTS + "{model}", schema_generator=_RequestStrings)
        return {key: schema for (key, _mode), schema in by_key.items()}, defs.get("$defs", {})


def _resolve(schema: dict, components: dict) -> dict:
    ref = schema.get("$ref", "")
    if ref.startswith(COMPONENTS):
        return components[ref[len(COMPONENTS):]]
    return schema


def _envelope_schema(data: dict) -> dict:
    return {"allOf": [{"$ref": COMPONENTS + "Envelope"},
                      {"type": "object", "properties": {"data": data}}]}


BASE_COMPONENTS: dict[str, Any] = {
    "Envelope": {
        "type": "object", "required": ["code", "message", "data"],
        "properties": {"code": {"type": "integer", "const": 0},
                       "message": {"type": "string"}, "data": {}},
        "description": "Every successful JSON reply.",
    },
    "FieldError": {
        "type": "object", "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    },
    "ErrorEnvelope": {
        "type": "object", "required": ["code", "message", "errors"],
        "properties": {
            "code": {"type": "integer", "description": "Business code; see docs/errors.md"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": COMPONENTS + "FieldError"}},
            "data": {},
        },
        "description": "Every error reply, with the HTTP status of its code.",
    },
}


def _error_responses() -> dict[str, dict]:
    by_status: dict[int, list[str]] = {}
    for _cls, status, code, message in errors.ERROR_TABLE:
        by_status.setdefault(status, []).append(f"`{code}` {message}")
    out = {}
    for status, lines in sorted(by_status.items()):
        out[f"Error{status}"] = {
            "description": "Business codes: " + "; ".join(lines),
            "content": {"application/json": {"schema": {"$ref": COMPONENTS + "ErrorEnvelope"}}},
        }
        if status == 429:
            out[f"Error{status}"]["headers"] = {"Retry-After": {
                "description": "Seconds until the rate-limit window has room again",
                "schema": {"type": "integer", "minimum": 1}}}
    return out


def _error_statuses(route: Route, spec: EndpointSpec) -> set[int]:
    statuses = {500, 503}
    if spec.auth or spec.viewer:
        statuses.add(401)
    if spec.roles:
        statuses.add(403)
    if spec.body is not None:
        statuses |= {400, 413, 422}
    if spec.query is not None:
        statuses.add(422)
    if spec.idempotent:
        statuses |= {409, 422}
    if route.params:
        statuses.add(404)
    if rules_for(route.name):
        statuses.add(429)
    statuses |= {cls.status for cls in spec.errors}
    return statuses


# -- the document ----------------------------------------------------------------------------
def build_document(routes: list[Route]) -> dict[str, Any]:
    schemas = _Schemas()
    planned = []
    for route in routes:
        for method, spec in operations(route).items():
            keys = {"body": schemas.add(spec.body, "validation"),
                    "query": schemas.add(spec.query, "validation"),
                    "response": schemas.add(spec.response, "serialization")}
            planned.append((route, method, spec, keys))
    rendered, components = schemas.render()
    components = {**BASE_COMPONENTS, **components}

    paths: dict[str, dict] = {}
    tags: set[str] = set()
    for route, method, spec, keys in planned:
        op = _operation(route, method, spec, keys, rendered, components)
        tags.update(op["tags"])
        paths.setdefault(route.openapi_path, {})[method] = op
    _add_links(planned, paths)
    for route in routes:
        if issubclass(route.handler, tornado.websocket.WebSocketHandler):
            paths.setdefault(route.openapi_path, {})["get"] = _websocket_operation(route)
            tags.add("realtime")

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PAWHome API",
            "version": "1",
            "description": ("REST API of the PAWHome mini-program backend. Success replies are "
                            "`{code: 0, message, data}`; errors are `{code, message, errors}` "
                            "with the business codes listed in docs/errors.md."),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": _error_responses(),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "Access token from a login endpoint (POST /v1/auth/...)"}},
        },
    }


def _operation(route: Route, method: str, spec: EndpointSpec, keys: dict, rendered: dict,
               components: dict) -> dict[str, Any]:
    doc = inspect.getdoc(getattr(route.handler, method)) or ""
    summary = spec.summary or (doc.splitlines()[0] if doc else route.name)
    description = "\n\n".join(p for p in (spec.description, doc if doc != summary else "") if p)
    if spec.roles:
        description = (description + "\n\n" if description else "") + \
            "Roles: " + ", ".join(spec.roles) + "."
    rules = rules_for(route.name)
    if rules:
        description = (description + "\n\n" if description else "") + \
            "Rate limits: " + ", ".join(r.label for r in rules) + "."
    op: dict[str, Any] = {
        "operationId": f"{route.name.replace('.', '_')}_{method}",
        "summary": summary,
        "tags": list(spec.tags) or [route.name.split(".")[0]],
        "parameters": [],
        # viewer=True: login optional ({} is the OpenAPI spelling of "no auth needed")
        "security": [{"bearerAuth": []}] if spec.auth else
                    [{"bearerAuth": []}, {}] if spec.viewer else [],
    }
    if description:
        op["description"] = description
    if spec.roles:
        op["x-roles"] = list(spec.roles)
    for name, kind in route.params.items():
        op["parameters"].append({
            "name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "format": "int64", "minimum": 0}
            if kind is int else {"type": "string"}})
    if keys["query"] is not None:
        model = _resolve(rendered[keys["query"]], components)
        required = set(model.get("required", ()))
        for name, prop in model.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            op["parameters"].append(param)
    if spec.idempotent:
        op["parameters"].append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": ("Makes the write safe to retry: the first response is stored per "
                            "user and key and replayed (with `Idempotent-Replayed: true`); the "
                            "same key with a different request is 422."),
            "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_\-:.]{1,128}$"}})
    if not op["parameters"]:
        del op["parameters"]
    if keys["body"] is not None:
        body = rendered[keys["body"]]
        # A body model with no required field may be left out: the gateway reads it as {}.
        op["requestBody"] = {"required": bool(_resolve(body, components).get("required")),
                             "content": {"application/json": {"schema": body}}}
    refusals = dict(spec.refuses)
    if spec.idempotent:
        refusals["Idempotency-Key"] = "a key names one request: the same key with another " \
                                      "request is 422 (code 42201)"
    if refusals:
        # Rules no schema can state; the fuzz gate (tests/test_fuzz.py) reads x-refusals.
        op["x-refusals"] = refusals
        op["description"] = (op.get("description", "") + "\n\n" if op.get("description")
                             else "") + "Refused beyond the schema: " + "; ".join(
            f"`{name}`: {why}" for name, why in refusals.items()) + "."

    if isinstance(spec.response, RawBody):
        success = {"description": "OK", "content": {
            spec.response.media_type: {"schema": spec.response.schema}}}
    else:
        data = rendered[keys["response"]] if keys["response"] is not None else {}
        success = {"description": "OK", "content": {
            "application/json": {"schema": _envelope_schema(data)}}}
    op["responses"] = {str(spec.status): success}
    for status, when in spec.also.items():
        op["responses"][str(status)] = {**success, "description": when}
    for status in sorted(_error_statuses(route, spec)):
        if isinstance(spec.error_response, RawBody):  # the handler's own error shape
            op["responses"][str(status)] = {"description": f"HTTP {status}", "content": {
                spec.error_response.media_type: {"schema": spec.error_response.schema}}}
        else:
            op["responses"][str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return op


def _add_links(planned: list, paths: dict[str, dict]) -> None:
    """OpenAPI links from each operation declaring `@endpoint(links={param: pointer})` to
    the operations taking that path parameter: the create -> read/update/delete flows a
    client (and the fuzz gate's stateful phase) follows. When some of those are under the
    producer's own path (POST /v1/media -> /v1/media/{media_id}/...), only those: a direct
    upload's id means nothing to /v1/media/uploads/{media_id}/.... A consumer's other path
    parameters come from the producer's own path when it has them."""
    for route, method, spec, _keys in planned:
        if not spec.links:
            continue
        consumers = [(target, target_method) for target, target_method, _s, _k in planned
                     if any(p in target.params for p in spec.links)
                     and not (target is route and target_method == method)]
        under = [(t, m) for t, m in consumers
                 if any(t.template.startswith(f"{route.template}/{{{p}") for p in spec.links)]
        links: dict[str, Any] = {}
        for target, target_method in under or consumers:
            shared = [p for p in spec.links if p in target.params]
            parameters = {p: f"$response.body#/data{spec.links[p]}" for p in shared}
            for other in target.params:
                if other not in parameters and other in route.params:
                    parameters[other] = f"$request.path.{other}"
            operation_id = f"{target.name.replace('.', '_')}_{target_method}"
            links[operation_id] = {"operationId": operation_id, "parameters": parameters}
        op = paths[route.openapi_path][method]
        for status in (spec.status, *spec.also):
            if links:
                op["responses"][str(status)]["links"] = dict(sorted(links.items()))


def _websocket_operation(route: Route) -> dict[str, Any]:
    doc = inspect.getdoc(route.handler) or "WebSocket endpoint"
    return {
        "operationId": f"{route.name.replace('.', '_')}_websocket",
        "summary": doc.splitlines()[0],
        "description": doc + "\n\nUpgrades to a WebSocket; frames are described in "
                             "docs/realtime.md. On server shutdown the close code is 1001.",
        "tags": ["realtime"],
        "security": [{"bearerAuth": []}],
        "x-refusals": {"Upgrade": "a WebSocket upgrade request (RFC 6455); anything else is 400"},
        "responses": {
            "101": {"description": "Switching Protocols (WebSocket)"},
            **{str(status): {"$ref": f"#/components/responses/Error{status}"}
               # 400: not an upgrade request; 503: full, or shutting down
               for status in (400, 401, 429, 500, 503)},
        },
    }


# -- serving and writing ---------------------------------------------------------------------
_cached: dict[int, bytes] = {}


def document_bytes(routes: list[Route]) -> bytes:
    """The document as served; built once per route table (fixed when the app is made)."""
    key = id(routes)
    if key not in _cached:
        _cached[key] = codec.dumps(build_document(routes))
    return _cached[key]


class OpenApiHandler(ApiHandler):
    @endpoint(auth=False, summary="This OpenAPI 3.1 document", tags=("meta",),
              response=RawBody("application/json", {"type": "object"}))
    async def get(self) -> None:
        self.finish(document_bytes(self.application.settings["routes"]))


def render_json(document: dict) -> str:
    # Indented and key-stable so docs/openapi.json diffs read well in review; the wire
    # format is pawhome.platform.codec.
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_errors_markdown() -> str:
    lines = [
        "# Error codes",
        "",
        "Generated from `pawhome.platform.errors.ERROR_TABLE` by `make openapi`; do not edit by "
        "hand.",
        "Every error reply is `{\"code\", \"message\", \"errors\": [{\"field\", \"message\"}]}` "
        "with the HTTP status below.",
        "",
        "| code | HTTP status | error class | default message |",
        "|---:|---:|---|---|",
    ]
    for cls, status, code, message in sorted(errors.ERROR_TABLE, key=lambda row: row[2]):
        lines.append(f"| {code} | {status} | `{cls.__name__}` | {message} |")
    return "\n".join(lines) + "\n"


def write_docs(routes: list[Route], directory: Path = DOCS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    outputs = {directory / "openapi.json": render_json(build_document(routes)),
               directory / "errors.md": render_errors_markdown()}
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return list(outputs)
