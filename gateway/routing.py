"""Route declarations: `route("/v1/users/{user_id:int}", Handler, "users.detail")`.

Templates use `{name}` (a path segment) or `{name:int}` (digits, passed as int). The template
is kept: it labels metrics and logs, and it is the path in the OpenAPI document.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
