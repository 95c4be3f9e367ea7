"""WeChat subscribe-message templates: which template a push uses (SUBSCRIBE_TEMPLATES by
purpose) and how its fields are filled within WeChat's per-type limits (the table in
docs/notifications.md). Pure functions: no database, no network.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from settings import Settings

# Categories without a template of their own use their family's (a reply is a comment).
PURPOSE_FALLBACK = {"reply": "comment", "mention": "comment", "activity": "appointment"}
LOCAL_TIME = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Template:
    purpose: str
    template_id: str
    page: str
    fields: dict[str, str]


def templates(settings: Settings) -> dict[str, Template]:
    """SUBSCRIBE_TEMPLATES by purpose ("message" or a notification category)."""
    out = {}
    for purpose, spec in (settings.subscribe_templates or {}).items():
        if isinstance(spec, dict) and spec.get("template_id"):
            out[purpose] = Template(purpose, str(spec["template_id"]), str(spec.get("page", "")),
                                    {str(k): str(v) for k, v in
                                     (spec.get("fields") or {}).items()})
    return out


def purpose_of(reason: str) -> str:
    """"message" -> "message"; "notification:reply" -> "reply"."""
    return reason.split(":", 1)[1] if reason.startswith("notification:") else reason


def template_for(settings: Settings, reason: str) -> Template | None:
    known = templates(settings)
    purpose = purpose_of(reason)
    return known.get(purpose) or known.get(PURPOSE_FALLBACK.get(purpose, ""))


# -- field values ------------------------------------------------------------------------------

_ELLIPSIS = "…"
# Maximum length per template field type (WeChat's subscribe-message rules).
FIELD_LIMITS = {
    "thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
    "time": 32, "date": 32, "amount": 11, "phone_number": 17, "car_number": 8, "name": 10,
    "phrase": 5,
}
_FIELD_TYPE = re.compile(r"^([a-z_]+?)\d*$")
_ASCII_NAME = re.compile(r"^[A-Za-z .'-]+$")


def field_type(field: str) -> str:
    """"thing2" -> "thing", "character_string10" -> "character_string"."""
    match = _FIELD_TYPE.match(field)
    return match.group(1) if match else field


def format_time(value: dt.datetime) -> str:
    """WeChat's time/date format: 2024年5月1日 15:01 (Asia/Shanghai)."""
    local = value.replace(tzinfo=dt.UTC).astimezone(LOCAL_TIME)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _cut(text: str, limit: int, ellipsis: bool = True) -> str:
    if len(text) <= limit:
        return text
    return text[:limit - 1] + _ELLIPSIS if ellipsis and limit > 1 else text[:limit]


def field_value(field: str, value: Any) -> str:
    """A value as WeChat accepts it for this field's type: trimmed to the type's limit,
    characters the type forbids removed, never empty."""
    kind = field_type(field)
    if isinstance(value, dt.datetime):
        text = format_time(value)
    else:
        text = " ".join(str(value if value is not None else "").split())
    if kind in ("number",):
        text = re.sub(r"[^0-9.]", "", text)
    elif kind == "letter":
        text = re.sub(r"[^A-Za-z]", "", text)
    elif kind == "phrase":
        text = re.sub(r"[^\u4e00-\u9fff]", "", text)
    elif kind in ("character_string", "phone_number", "car_number", "amount", "symbol"):
        text = text.replace(" ", "")
    if kind == "name":
        limit = 20 if _ASCII_NAME.match(text) else 10
        text = _cut(text, limit, ellipsis=False)
    elif kind in ("thing",):
        text = _cut(text, FIELD_LIMITS[kind])
    else:
        text = _cut(text, FIELD_LIMITS.get(kind, 20), ellipsis=False)
    return text or ("-" if kind in ("thing", "name", "character_string", "symbol") else "0"
                    if kind in ("number", "amount") else "-")


def build_data(template: Template, context: dict[str, Any]) -> dict[str, dict[str, str]]:
    """subscribeMessage.send's `data` from the template's field mapping."""
    return {field: {"value": field_value(field, context.get(source, ""))}
            for field, source in template.fields.items()}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def build_page(template: Template, context: dict[str, Any]) -> str:
    try:
        return template.page.format_map(_Blank({k: "" if v is None else v
                                                for k, v in context.items()}))
    except (ValueError, IndexError):
        return template.page.split("?", 1)[0]
