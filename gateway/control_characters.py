"""Control characters in client input: refused wherever a client sends text.

A NUL, an escape or a backspace in a post, a comment, a nickname or a chat message is never
what a person typed; stored, it comes back in search snippets, feeds and other people's
screens. So every string (and object key) of a JSON body, a query string or a WebSocket frame
is checked before its model sees it, and one holding C0 control characters other than tab,
line feed and carriage return, or DEL, is refused with 422 (code 42200, one field error per
string). Checking the decoded JSON, not each model's fields, means no field can be forgotten;
opaque values (tokens, cursors, ids) are checked too, and none of ours holds such characters.
Lone surrogates never get this far: the JSON parser refuses them (400, 40001) and query
strings are decoded with replacement characters.

The OpenAPI document states the same rule as a `pattern` on every request string
(`SCHEMA_PATTERN`, applied in gateway/openapi.py), so the spec and the check agree.
"""
from __future__ import annotations

import re
from typing import Any

from pawhome.platform import errors
from pawhome.platform.fields import CONTROL_CHARACTERS

# The refused characters (one definition, pawhome/platform/fields.py), and the same set as the
# JSON Schema pattern of every request string.
_REFUSED = re.compile(f"[{CONTROL_CHARACTERS}]")
SCHEMA_PATTERN = rf"^[^{CONTROL_CHARACTERS}]*$"
MESSAGE = "control characters are not allowed"

# In JSON text a refused character can only appear as a \u00XX escape, \b, \f or a raw DEL
# (JSON forbids raw C0 characters in strings): text without any of these needs no walk.
_JSON_MARKERS_BYTES = (b"\\u00", b"\\b", b"\\f", b"\x7f")
_JSON_MARKERS_STR = tuple(marker.decode("latin-1") for marker in _JSON_MARKERS_BYTES)


def has_control_characters(text: str) -> bool:
    return _REFUSED.search(text) is not None


def json_may_hold_control_characters(raw: bytes | str) -> bool:
    """False when the JSON text `raw` cannot decode to a string holding a refused character."""
    markers = _JSON_MARKERS_BYTES if isinstance(raw, bytes) else _JSON_MARKERS_STR
    return any(marker in raw for marker in markers)  # type: ignore[operator]


def _shown(key: str) -> str:
    return _REFUSED.sub(lambda match: f"\\u{ord(match.group()):04x}", key)


def control_character_errors(data: Any) -> list[dict[str, str]]:
    """One field error per string or key in the decoded JSON `data` that holds a refused
    character, named by its path ("text", "images.0", "prefs.notify")."""
    found: list[dict[str, str]] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:  # no recursion: nesting depth is whatever the client sent
        path, value = stack.pop()
        if isinstance(value, str):
            if _REFUSED.search(value):
                found.append(errors.field_error(path or "body", MESSAGE))
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _REFUSED.search(key):
                    found.append(errors.field_error(_shown(key_path), MESSAGE))
                else:
                    stack.append((key_path, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item)
                         for i, item in enumerate(value))
    found.sort(key=lambda error: error["field"])
    return found
