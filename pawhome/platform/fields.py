"""Field constraints shared by request models, written so that the OpenAPI document generated
from the models states exactly what the code accepts (tests/test_fuzz.py holds them to it)."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

MAX_ID = 2**63 - 1

# Some character that str.strip() keeps: a text matching this is not blank. The class is the
# complement of Python's whitespace, spelled out (\s differs between Python, JSON Schema's
# ECMA regexes and pydantic's Rust regexes on \x1c-\x1f and \ufeff).
NOT_BLANK = (r"[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
             r"\u205f\u3000]")

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# 0 unknown, 1 male, 2 female. An int range, not Literal[0, 1, 2]: a Literal of ints takes
# false for 0 even in strict mode.
Gender = Annotated[int, Field(ge=0, le=2, description="0 unknown, 1 male, 2 female")]


def _number_only(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a JSON number")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def decimal_number(*, max_digits: int, decimal_places: int, **bounds: float) -> object:
    """A Decimal sent as a JSON number (pydantic would also take a numeric string, and
    document that it does); `bounds` are gt/ge/lt/le."""
    names = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum",
             "le": "maximum"}
    schema: dict = {"type": "number", **{names[k]: v for k, v in bounds.items()}}
    return Annotated[Decimal, BeforeValidator(_number_only),
                     Field(max_digits=max_digits, decimal_places=decimal_places, **bounds),
                     WithJsonSchema(schema)]


def no_null_default(schema: dict) -> None:
    """`json_schema_extra` of an update field that may be left out but not set to null: its
    Python default (None, "not sent") is no value of its schema, so the schema shows none."""
    schema.pop("default", None)


def distinct(description: str = "") -> dict:
    """`json_schema_extra` of a list whose items must not repeat (its validator refuses them)."""
    extra: dict = {"uniqueItems": True}
    if description:
        extra["description"] = description
    return extra
