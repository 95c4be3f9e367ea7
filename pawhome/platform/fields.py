"""Field constraints shared by request models, written so that the OpenAPI document generated
from the models states exactly what the code accepts (tests/test_fuzz.py holds them to it)."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_ID = 2**63 - 1

# Text that is not blank (some character str.strip() keeps) and holds no control character
# the gateway refuses (gateway/control_characters.py: C0 but tab, LF, CR; DEL). Whitespace is
# spelled out as Python's str.isspace() has it: \s differs between Python, JSON Schema's
# ECMA regexes and pydantic's Rust regexes (on U+001C-U+001F and U+FEFF).
# One spelling of the set, as a regex class body that Python's re, pydantic's Rust regexes and
# JSON Schema's ECMA regexes all read the same (gateway/control_characters.py uses it too).
CONTROL_CHARACTERS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f"
_CONTROL = CONTROL_CHARACTERS
_SPACE = r"\t\n\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
# A class body for "neither whitespace nor a control character", read alike by all three.
SPACE_OR_CONTROL = _SPACE + _CONTROL

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# 0 unknown, 1 male, 2 female. An int range, not Literal[0, 1, 2]: a Literal of ints takes
# false for 0 even in strict mode.
Gender = Annotated[int, Field(ge=0, le=2, description="0 unknown, 1 male, 2 female")]


def json_number(value: object) -> Decimal:
    """BeforeValidator of a Decimal field that takes JSON numbers only (not numeric strings,
    which pydantic would take and document)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a JSON number")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def no_null_default(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of an update field that may be left out but not set to null: its
    Python default (None, "not sent") is no value of its schema, so the schema shows none."""
    schema.pop("default", None)


def distinct(description: str = "") -> dict[str, Any]:
    """`json_schema_extra` of a list whose items must not repeat (its validator refuses them)."""
    extra: dict[str, Any] = {"uniqueItems": True}
    if description:
        extra["description"] = description
    return extra


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def iso_date_text(value: object) -> object:
    """BeforeValidator of a date query parameter: YYYY-MM-DD only (pydantic alone would also
    take "0" or "1700000000" as a date, which no client means)."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


QueryDate = Annotated[dt.date, BeforeValidator(iso_date_text)]
