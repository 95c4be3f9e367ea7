"""The base of every REST handler: envelope, errors, request ids, auth, validation, limits.

Handlers are thin. Each HTTP method is wrapped by `@endpoint(...)`, which declares what the
method needs — auth and roles, a pydantic body and query model, idempotency — and is also
what the OpenAPI document is generated from. The method itself calls one domain function and
replies with `self.ok(data)`.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
import tornado
import tornado.web
from tornado import httputil

from gateway import accesslog
from gateway.control_characters import control_character_errors, json_may_hold_control_characters
from gateway.errormap import to_app_error
from gateway.idempotency import run_idempotent
from gateway.ratelimit import rules_for
from gateway.server import client_address
from pawhome.identity.tokens import (
    CONSOLE_COOKIE,
    CONSOLE_CSRF_HEADER,
    AccessClaims,
    check_revocation,
    decode_access_token,
    decode_console_cookie,
    ensure_not_revoked,
    revocation_keys,
)
from pawhome.platform import codec, errors
from pawhome.platform.logs import request_id_var

log = logging.getLogger("pawhome.gateway")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_parsed_queries: dict[tuple[type, str], pydantic.BaseModel] = {}
_PARSED_QUERIES_MAX = 2048
_SERVER = f"TornadoServer/{tornado.version}"
_date_header: tuple[int, str] = (0, "")  # (the second, its Date header): see ApiHandler.clear


@dataclass
class EndpointSpec:
    auth: bool = True
    roles: tuple[str, ...] = ()
    body: type[pydantic.BaseModel] | None = None
    query: type[pydantic.BaseModel] | None = None
    response: Any = None
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    idempotent: bool = False
    status: int = 200
    max_body: int | None = None
    errors: tuple[type[errors.AppError], ...] = field(default_factory=tuple)
    viewer: bool = False
    read_ahead: Callable[[ApiHandler], list[str]] | None = None
    also: dict[int, str] = field(default_factory=dict)
    refuses: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    error_response: Any = None


def endpoint(*, auth: bool = True, roles: tuple[str, ...] | list[str] = (), body=None,
             query=None, response=None, summary: str = "", description: str = "",
             tags: tuple[str, ...] = (), idempotent: bool = False, status: int = 200,
             max_body: int | None = None, errors: tuple = (), viewer: bool = False,
             read_ahead: Callable[[ApiHandler], list[str]] | None = None,
             also: dict[int, str] | None = None, refuses: dict[str, str] | None = None,
             links: dict[str, str] | None = None, error_response: Any = None) -> Callable:
    """Declare a handler method's contract; the gateway enforces it before the method runs.

    `viewer=True` (with auth=False): login is optional, but a token that is sent must be
    valid; `self.auth` is then set. `read_ahead(handler)` names Redis keys the method will
    read (given `self.query` and `self.auth`): they are read in the same round trip as the
    rate limits and the token check, and the method finds them in `self.read_ahead`.

    What the OpenAPI document says besides: `errors` are the error classes the method may
    raise beyond what the declaration implies (auth, body, query, path ids, limits);
    `also` maps other success statuses to when they happen; `refuses` maps a request field
    to a rule the schema cannot state (it depends on the caller, on stored data or on
    another field), which refuses a schema-valid request with 400/413/422 naming that field;
    `links` maps a path parameter name to where the reply holds a value for it (a JSON
    pointer into `data`, e.g. "/id"), so the document links this operation to every
    operation that takes that parameter. `error_response` (an openapi.RawBody) documents
    every error reply in a shape of the handler's own (its `error_body`), for callbacks that
    must answer in their caller's format.
    """
    if idempotent and not (auth or roles):
        raise TypeError("idempotent endpoints need auth: keys are stored per user")
    spec = EndpointSpec(auth=auth or bool(roles), roles=tuple(roles), body=body, query=query,
                        response=response, summary=summary, description=description,
                        tags=tuple(tags), idempotent=idempotent, status=status,
                        max_body=max_body, errors=tuple(errors),
                        viewer=viewer and not (auth or roles), read_ahead=read_ahead,
                        also=dict(also or {}), refuses=dict(refuses or {}),
                        links=dict(links or {}), error_response=error_response)

    def decorate(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(method)
        def wrapper(self: ApiHandler, *args: Any, **kwargs: Any) -> Awaitable[None]:
            # Returns run_endpoint's coroutine (tornado awaits it): one coroutine level less.
            return self.run_endpoint(spec, method, args, kwargs)

        wrapper.endpoint_spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorate


def validation_errors(error: pydantic.ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        message = item.get("msg", "invalid")
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        out.append(errors.field_error(prefix + loc if loc else prefix.rstrip(".") or "body",
                                      message))
    return out


def _integral_floats_as_ints(value: Any) -> Any:
    """JSON has one number type: to JSON Schema (and so to our OpenAPI document) 5.0 is the
    integer 5. Returns `value` itself when it holds no such float."""
    if isinstance(value, float) and value.is_integer() and -2**63 <= value < 2**63:
        return int(value)  # (orjson reads a longer integer as a float: that one stays)
    if isinstance(value, dict):
        items = {k: _integral_floats_as_ints(v) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    if isinstance(value, list):
        new = [_integral_floats_as_ints(v) for v in value]
        return value if all(a is b for a, b in zip(new, value, strict=True)) else new
    return value


def implemented_methods(handler: type[tornado.web.RequestHandler]) -> list[str]:
    """The HTTP methods a handler class answers (those it overrides)."""
    base = tornado.web.RequestHandler
    return [m for m in handler.SUPPORTED_METHODS
            if getattr(handler, m.lower(), None) is not getattr(base, m.lower(), None)]


class ApiHandler(tornado.web.RequestHandler):
    """JSON API handler. `self.r` is the process's Resources; `self.auth` the caller's claims."""

    auth: AccessClaims | None
    body: Any
    query: Any

    def initialize(self, route_template: str = "", path_types: dict | None = None) -> None:
        self.route_template = route_template
        self.path_types = path_types or {}
        self.auth = None
        self.body = None
        self.query = None
        self.read_ahead: dict[str, Any] = {}
        self.app_error: errors.AppError | None = None
        self.started = time.perf_counter()
        self._inflight = None
        self._client_ip: str | None = None

    # -- plumbing ------------------------------------------------------------------------
    @property
    def r(self):
        return self.application.settings["resources"]

    @property
    def limiter(self):
        return self.application.settings["limiter"]

    @property
    def caller(self) -> AccessClaims:
        """The caller's verified claims (an endpoint that requires auth)."""
        assert self.auth is not None, "endpoint declared auth=False"
        return self.auth

    @property
    def user_id(self) -> int:
        return self.caller.user_id

    @property
    def route_name(self) -> str | None:
        return self.application.settings["route_names"].get(type(self))

    def compute_etag(self) -> None:
        return None  # replies are per-caller and "no-store": an ETag would only cost a hash

    def clear(self) -> None:
        """Tornado's clear() (run once per request, and again by send_error), with the Date
        header formatted once a second rather than per request: email.utils.formatdate was
        about 2.5 % of the gateway's CPU on a cached feed page. The header reads the same
        (it has a resolution of one second)."""
        global _date_header
        second = int(time.time())
        if _date_header[0] != second:
            _date_header = (second, httputil.format_timestamp(second))
        self._headers = httputil.HTTPHeaders({"Server": _SERVER,
                                              "Content-Type": "text/html; charset=UTF-8",
                                              "Date": _date_header[1]})
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = httputil.responses[200]

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        # Plain (not async): nothing here waits, and tornado awaits an async prepare even so.
        self._inflight = self.application.settings.get("inflight")
        if self._inflight is not None:
            self._inflight.enter()  # Gateway.shutdown waits for these to finish
        incoming = self.request.headers.get("X-Request-ID", "")
        self.request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        request_id_var.set(self.request_id)
        self.set_header("X-Request-ID", self.request_id)
        if self.application.settings.get("shutting_down"):
            # A request on a kept-alive connection after SIGTERM: answer 503 and close the
            # connection so the client's next request goes (via nginx) to another process.
            connection = self.request.connection
            if hasattr(connection, "_disconnect_on_finish"):
                connection._disconnect_on_finish = True  # tornado adds "Connection: close"
            raise errors.ShuttingDown()
        for name, kind in self.path_types.items():
            if name in self.path_kwargs and kind is int:
                value = int(self.path_kwargs[name])
                if value > 2**63 - 1:
                    raise errors.NotFound()
                self.path_kwargs[name] = value

    def client_ip(self) -> str:
        """The client's address for rate limits and the access log (gateway/server.py)."""
        if self._client_ip is None:
            self._client_ip = client_address(self.request, self.r.settings.trusted_proxy_count)
        return self._client_ip

    # -- replies ---------------------------------------------------------------------------
    def ok(self, data: Any = None, message: str = "ok", status: int | None = None) -> None:
        if status is not None:
            self.set_status(status)
        self.finish(codec.dumps({"code": 0, "message": message, "data": data}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = to_app_error(exc_info[1] if exc_info else None, status_code)
        self.app_error = error
        self.set_status(error.status)
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 405:  # RFC 9110: a 405 names the methods the resource has
            self.set_header("Allow", ", ".join(implemented_methods(type(self))))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if getattr(self, "request_id", None):  # send_error() cleared the headers
            self.set_header("X-Request-ID", self.request_id)
        self.finish(codec.dumps(self.error_body(error)))

    def error_body(self, error: errors.AppError) -> Any:
        """An error reply's JSON; a callback that answers in its caller's shape overrides it
        (and declares `@endpoint(error_response=...)`)."""
        return error.body()

    def log_exception(self, typ, value, tb) -> None:
        error = to_app_error(value, 500)
        if isinstance(error, errors.InternalError) and not isinstance(value, errors.AppError):
            log.error("unhandled error on %s %s", self.request.method, self.route_template,
                      exc_info=(typ, value, tb), extra={"request_id": self.request_id})
        elif isinstance(error, errors.ServiceUnavailable):
            log.warning("%s on %s: %r", type(error).__name__, self.route_template, value)

    def on_finish(self) -> None:
        if self._inflight is not None:
            self._inflight.leave()
            self._inflight = None
        accesslog.record(self)

    # -- the endpoint pipeline -------------------------------------------------------------
    async def run_endpoint(self, spec: EndpointSpec, method: Callable, args: tuple,
                           kwargs: dict) -> None:
        """Admit the request with ONE Redis call (rate-limit windows, token revocation and
        the method's read-ahead keys), then check roles, parse, run the method."""
        route = self.route_name or self.route_template
        claims, token_error = None, None
        if spec.auth or (spec.viewer and ("Authorization" in self.request.headers
                                          or self.get_cookie(CONSOLE_COOKIE))):
            try:
                claims = self.token_claims()  # local work only: signature and expiry
            except errors.AppError as error:
                token_error = error  # still counted against the per-IP limit below
        query_error = None
        if spec.query is not None:
            try:
                self.query = self.parse_query(spec.query)
            except errors.ValidationFailed as error:
                query_error = error  # answered after admission, like every other refusal
        hits = []
        for rule in rules_for(self.route_name):
            if rule.scope == "ip":
                hits.append((rule, self.client_ip()))
            elif claims is not None:
                hits.append((rule, str(claims.user_id)))
        reads = revocation_keys(self.r.cache, claims) if claims is not None else []
        ahead: list[str] = []
        if spec.read_ahead is not None and token_error is None and query_error is None:
            self.auth = claims  # what read_ahead may look at; set for good once admitted
            try:
                ahead = spec.read_ahead(self)
            finally:
                self.auth = None
        values = await self.limiter.admit(route, hits, reads + ahead)
        if token_error is not None:
            raise token_error
        if claims is not None:
            check_revocation(claims, values[:3])
            self.auth = claims
            self.application.settings["activity"].seen(claims.user_id)
            if spec.roles and claims.role not in spec.roles:
                raise errors.Forbidden("This endpoint needs the role: " + ", ".join(spec.roles))
        self.read_ahead = dict(zip(ahead, values[len(reads):], strict=True))
        if query_error is not None:
            raise query_error
        if spec.body is not None:
            self.body = self.parse_body(spec.body, spec.max_body)
        if spec.idempotent and "Idempotency-Key" in self.request.headers:
            await run_idempotent(self, lambda: method(self, *args, **kwargs))
            return
        await method(self, *args, **kwargs)

    def token_claims(self) -> AccessClaims:
        """The verified claims of the bearer token, or of the web console's session cookie
        when no Authorization header is sent (a write then needs its CSRF header); revocation
        is checked by the caller."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            cookie = self.get_cookie(CONSOLE_COOKIE)
            if cookie:
                return decode_console_cookie(self.r.settings, cookie, self.request.method or "",
                                             self.request.headers.get(CONSOLE_CSRF_HEADER, ""))
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized()
        return decode_access_token(self.r.settings, token.strip())

    async def authenticate(self) -> AccessClaims:
        """Verify the bearer token outside run_endpoint (its own revocation read)."""
        claims = self.token_claims()
        await ensure_not_revoked(self.r.cache, claims)
        self.auth = claims
        return claims

    @property
    def viewer_id(self) -> int | None:
        """The caller's user id on a `viewer=True` endpoint, None if not logged in."""
        return self.auth.user_id if self.auth is not None else None

    def parse_body(self, model: type[pydantic.BaseModel], max_body: int | None = None):
        limit = max_body or self.r.settings.max_body_bytes
        raw = self.request.body or b""
        if len(raw) > limit:
            raise errors.PayloadTooLarge(f"Request body is over {limit} bytes")
        ctype = self.request.headers.get("Content-Type", "application/json")
        if raw and "json" not in ctype:
            raise errors.BadRequest("Content-Type must be application/json")
        if not raw.strip():
            raw = b"{}"  # a body model without required fields may be left out
        try:
            data = codec.loads(raw)
        except codec.JSONDecodeError as error:
            raise errors.MalformedJson() from error
        if not isinstance(data, dict):
            raise errors.MalformedJson("Request body must be a JSON object")
        if json_may_hold_control_characters(raw):
            refused = control_character_errors(data)
            if refused:
                raise errors.ValidationFailed(errors=refused)
        whole = _integral_floats_as_ints(data)
        if whole is not data:
            raw = codec.dumps(whole)
        try:
            # Strict: JSON types are taken as the OpenAPI document states them (0 is no
            # boolean, "5" no integer); JSON mode still reads dates from ISO strings.
            return model.model_validate_json(raw, strict=True)
        except pydantic.ValidationError as error:
            raise errors.ValidationFailed(errors=validation_errors(error)) from error

    def parse_query(self, model: type[pydantic.BaseModel]):
        """The validated query. Frozen models are remembered per query string: the same
        feed is asked for with the same few strings all day."""
        frozen = model.model_config.get("frozen", False) and len(self.request.query) <= 256
        if frozen:
            cached = _parsed_queries.get((model, self.request.query))
            if cached is not None:
                return cached
        data: dict[str, Any] = {}
        for name, values in self.request.query_arguments.items():
            decoded = [v.decode("utf-8", "replace") for v in values]
            data[name] = decoded if len(decoded) > 1 else decoded[0]
        refused = control_character_errors(data)
        if refused:
            raise errors.ValidationFailed(errors=refused)
        try:
            parsed = model.model_validate(data)
        except pydantic.ValidationError as error:
            raise errors.ValidationFailed(errors=validation_errors(error)) from error
        if frozen:
            if len(_parsed_queries) >= _PARSED_QUERIES_MAX:
                del _parsed_queries[next(iter(_parsed_queries))]  # the oldest
            _parsed_queries[(model, self.request.query)] = parsed
        return parsed


class NotFoundHandler(ApiHandler):
    """Unknown paths answer in the JSON envelope too."""

    def prepare(self) -> None:
        super().prepare()
        raise errors.NotFound("No such endpoint")
