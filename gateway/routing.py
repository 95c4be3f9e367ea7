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
    """The application's first rule: every route found without trying the regexes one by one.

    Routes without parameters are found with one dict lookup. A route with parameters is
    filed under the first two segments of its template (`/v1/services` for
    `/v1/services/{service_id:int}/slots`); a path tries only the routes filed under its own
    first two segments (and those with a parameter among their first two segments), in the
    order they were declared. Tornado would try every regex rule in turn: GET /v1/posts was
    about the 23rd, the slots of a service about the 150th. A path found here is answered by
    the route Tornado's own rules (kept after this one) would have chosen; a path found nowhere
    falls through to them and to the 404 handler."""

    def __init__(self, routes: list[Route]) -> None:
        self.application: tornado.web.Application | None = None  # set once it exists
        self.specs = {r.template: r.spec() for r in routes if not r.params}
        self._filed: dict[str, list[tuple[int, URLSpec]]] = {}
        self._anywhere: list[tuple[int, URLSpec]] = []  # a parameter in the first two segments
        for index, r in enumerate(routes):
            if r.params:
                key = _section(r.template[:r.template.index("{")])
                (self._filed.setdefault(key, []) if key else self._anywhere).append(
                    (index, r.spec()))
        self._candidates: dict[str, list[URLSpec]] = {}

    def candidates(self, path: str) -> list[URLSpec]:
        """The parametrised routes that may match `path`, in declaration order."""
        key = _section(path, whole=True)
        found = self._candidates.get(key)
        if found is None:
            found = [spec for _, spec in sorted(self._filed.get(key, []) + self._anywhere,
                                                key=lambda pair: pair[0])]
            if key in self._filed or len(self._candidates) < 256:
                self._candidates[key] = found  # bounded: clients make up paths
        return found

    def find_handler(self, request: Any, **kwargs: Any):
        if self.application is None:
            return None
        path = request.path
        spec = self.specs.get(path)
        if spec is not None:
            return self.application.get_handler_delegate(request, spec.target, spec.kwargs)
        for spec in self.candidates(path):
            params = spec.matcher.match(request)
            if params is not None:
                return self.application.get_handler_delegate(request, spec.target,
                                                             spec.kwargs, **params)
        return None


def _section(text: str, whole: bool = False) -> str:
    """The first two segments of a path ("/v1/services"); "" when a template's literal start
    (`whole=False`: cut at its last "/") holds fewer than two whole segments."""
    if not whole:
        text = text[:text.rindex("/") + 1] if "/" in text else ""
    parts = text.split("/", 3)
    if len(parts) < 3 or (not whole and len(parts) < 4):
        return ""
    return "/".join(parts[:3])
