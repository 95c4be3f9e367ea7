"""The one pagination helper: page/limit lists and opaque cursors for feeds and history.

Page lists reply `{"items", "total", "page", "limit", "totalPages"}`; cursor lists reply
`{"items", "nextCursor"}` where the cursor is an opaque, URL-safe token the client echoes.
"""
from __future__ import annotations

import base64
import math
from typing import Any

from pydantic import BaseModel, Field

from pawhome.platform import codec
from pawhome.platform.errors import ValidationFailed, field_error

MAX_LIMIT = 100
# What a cursor list refuses beyond its schema (declared with `@endpoint(refuses=...)`).
CURSOR_RULE = {"cursor": "only a nextCursor this list returned is accepted"}


# Query models are frozen: the gateway reuses a parsed query for the same query string
# (gateway/handler.py parse_query), so nobody may change one in place.
class PageQuery(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}
    page: int = Field(1, ge=1, le=100_000)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


class CursorQuery(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}
    cursor: str | None = Field(None, max_length=512)
    limit: int = Field(10, ge=1, le=MAX_LIMIT)


def page_result(items: list[Any], total: int, query: PageQuery) -> dict[str, Any]:
    return {"items": items, "total": total, "page": query.page, "limit": query.limit,
            "totalPages": math.ceil(total / query.limit) if total else 0}


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(codec.dumps(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = codec.loads(raw)
    except (ValueError, codec.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ValidationFailed(errors=[field_error("cursor", "invalid cursor")])
    return value


def cursor_result(items: list[Any], next_position: dict[str, Any] | None) -> dict[str, Any]:
    return {"items": items, "nextCursor": encode_cursor(next_position) if next_position else None}
