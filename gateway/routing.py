"""Route declarations: `route("/v1/users/{user_id:int}", Handler, "users.detail")`.

Templates use `{name}` (a path segment) or `{name:int}` (digits, passed as int). The template
is kept: it labels metrics and logs, and it is the path in the OpenAPI document.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import tornado.routing
import tornado.web
from tornado.web import URLSpec

_PARAM = re.compile(r"\{(\w+)(?::(int|str))?\}")


@dataclass(frozen=True)
class Route:
    template: str
    handler: type
    name: str

    @property
    def params(self) -> dict[str, type]:
        return {m.group(1): int if m.group(2) == "int" else str
                for m in _PARAM.finditer(self.template)}

    @property
    def openapi_path(self) -> str:
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.template)

    def spec(self) -> URLSpec:
        def group(m: re.Match) -> str:
            pattern = "[0-9]{1,19}" if m.group(2) == "int" else "[^/]+"
            return f"(?P<{m.group(1)}>{pattern})"

        regex, last = "", 0
        for m in _PARAM.finditer(self.template):
            regex += re.escape(self.template[last:m.start()]) + group(m)
            last = m.end()
        regex += re.escape(self.template[last:]) + "$"
        return URLSpec(regex, self.handler,
                       {"route_template": self.template, "path_types": self.params},
                       name=self.name)


def route(template: str, handler: type, name: str) -> Route:
    return Route(template, handler, name)


class LiteralPaths(tornado.routing.Router):
    """The routes without parameters, found with one dict lookup. It is the first rule of
    the application; a path it does not know falls through to the regex rules, which Tornado
    tries one by one (GET /v1/posts was about the 23rd)."""

    def __init__(self, routes: list[Route]) -> None:
        self.application: tornado.web.Application | None = None  # set once it exists
        self.specs = {r.template: r.spec() for r in routes if not r.params}

    def find_handler(self, request: Any, **kwargs: Any):
        spec = self.specs.get(request.path)
        if spec is None or self.application is None:
            return None
        return self.application.get_handler_delegate(request, spec.target, spec.kwargs)
