"""The one JSON codec of the project (orjson behind two functions).

Swapping the codec is a change to this file only. orjson is strict about UTF-8, serialises
datetimes, dates, UUIDs and dataclasses natively, and returns bytes, which is what we write.
"""
from __future__ import annotations

import decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


# JSON text that is already encoded (e.g. a JSON column as the database returns it), embedded
# in dumps' output as it is, without decoding and encoding it again. It must be valid JSON.
Raw = orjson.Fragment


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


JSONDecodeError = orjson.JSONDecodeError
