"""What organisers and users send: an activity's terms (ActivityBody, ActivityPatch), its custom
registration fields (typed definitions with required flags) and a user's answers to them, and
the rules a schema cannot state (checked by `check_terms` and `check_answers`). Pure: no
database. Answers may hold a phone number: they are never logged.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from pawhome.platform.errors import ActivityInvalid, RegistrationFormInvalid, field_error
from pawhome.platform.fields import NOT_BLANK, SPACE_OR_CONTROL, Id, no_null_default
from pawhome.platform.wordfilter import screen_text

ActivityKind = Literal["meetup", "adoption_day", "vaccination_day", "other"]
PriceType = Literal["free", "cash", "points"]
FieldType = Literal["text", "phone", "number", "choice", "date"]
KINDS: dict[str, str] = {"meetup": "宠物聚会", "adoption_day": "领养日",
                         "vaccination_day": "疫苗日", "other": "其他活动"}
MAX_FIELDS = 10
MAX_PRICE = 10_000_000  # fen (¥100,000) or points
MAX_CAPACITY = 100_000
ANSWER_MAX = 200
FIELD_KEY = r"^[a-z][a-z0-9_]{0,31}$"
COVER_URL = rf"^(https://[^{SPACE_OR_CONTROL}]+)?$"
PHONE = re.compile(r"^1[3-9][0-9]{9}$")  # a mainland mobile number
NUMBER = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
TIME_FIELDS = ("start_at", "end_at", "registration_opens_at", "registration_closes_at",
               "cancel_deadline_at")


class FormField(BaseModel):
    """One custom registration field: `key` names the answer, `label` is what users see."""
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=FIELD_KEY, description="the answer's name, e.g. pet_name")
    label: str = Field(min_length=1, max_length=32, pattern=NOT_BLANK)
    type: FieldType = Field(description="text, phone (a mainland mobile number), number, "
                                        "choice (one of options), date (YYYY-MM-DD)")
    required: bool = False
    options: list[str] = Field(default_factory=list, max_length=20,
                               description="choice only: the choices")


def _aware_in_range(value: dt.datetime | None) -> dt.datetime | None:
    """Times are within 2000-2100 (which also keeps the calendar's ends from overflowing
    when converted to UTC)."""
    if value is not None and not 2000 <= value.year <= 2100:
        raise ValueError("must be between the years 2000 and 2100")
    return value


class ActivityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ActivityKind = "meetup"
    title: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    description: str = Field("", max_length=5000)
    cover_media_id: Id | None = Field(None, description="the organiser's ready image")
    cover_url: str = Field("", max_length=512, pattern=COVER_URL,
                           description="or an https URL of the cover image")
    place_name: str = Field(min_length=1, max_length=64, pattern=NOT_BLANK)
    place_address: str = Field("", max_length=255)
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    start_at: AwareDatetime
    end_at: AwareDatetime
    registration_opens_at: AwareDatetime | None = Field(None, description="default: now")
    registration_closes_at: AwareDatetime | None = Field(None,
                                                         description="default: start_at")
    cancel_deadline_at: AwareDatetime | None = Field(
        None, description="users may cancel until then; default: registration_closes_at")
    capacity: int = Field(ge=1, le=MAX_CAPACITY)
    waitlist_enabled: bool = False
    price_type: PriceType = "free"
    price: int = Field(0, ge=0, le=MAX_PRICE, description="fen (cash) or points; 0 if free")
    form_fields: list[FormField] = Field(default_factory=list, max_length=MAX_FIELDS)

    _times = field_validator(*TIME_FIELDS)(_aware_in_range)


class ActivityPatch(BaseModel):
    """Changes to an activity: only the fields sent change (null is not a value)."""
    model_config = ConfigDict(extra="forbid")
    kind: ActivityKind = Field(None, json_schema_extra=no_null_default)  # type: ignore[arg-type]
    title: str = Field(None, min_length=1, max_length=64,  # type: ignore[assignment]
                       pattern=NOT_BLANK, json_schema_extra=no_null_default)
    description: str = Field(None, max_length=5000,  # type: ignore[assignment]
                             json_schema_extra=no_null_default)
    cover_media_id: Id | None = None
    cover_url: str = Field(None, max_length=512, pattern=COVER_URL,  # type: ignore[assignment]
                           json_schema_extra=no_null_default)
    place_name: str = Field(None, min_length=1, max_length=64,  # type: ignore[assignment]
                            pattern=NOT_BLANK, json_schema_extra=no_null_default)
    place_address: str = Field(None, max_length=255,  # type: ignore[assignment]
                               json_schema_extra=no_null_default)
    lat: float = Field(None, ge=-90, le=90,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    lng: float = Field(None, ge=-180, le=180,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    start_at: AwareDatetime = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]
    end_at: AwareDatetime = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]
    registration_opens_at: AwareDatetime = Field(  # type: ignore[assignment]
        None, json_schema_extra=no_null_default)
    registration_closes_at: AwareDatetime = Field(  # type: ignore[assignment]
        None, json_schema_extra=no_null_default)
    cancel_deadline_at: AwareDatetime = Field(  # type: ignore[assignment]
        None, json_schema_extra=no_null_default)
    capacity: int = Field(None, ge=1, le=MAX_CAPACITY,  # type: ignore[assignment]
                          json_schema_extra=no_null_default)
    waitlist_enabled: bool = Field(None, json_schema_extra=no_null_default)  # type: ignore[assignment]
    price_type: PriceType = Field(None, json_schema_extra=no_null_default)  # type: ignore[arg-type]
    price: int = Field(None, ge=0, le=MAX_PRICE,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    form_fields: list[FormField] = Field(None, max_length=MAX_FIELDS,  # type: ignore[arg-type]
                                         json_schema_extra=no_null_default)

    _times = field_validator(*TIME_FIELDS)(_aware_in_range)


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, str] = Field(default_factory=dict, max_length=MAX_FIELDS,
                                    description="the activity's form_fields, by key")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=255)


class CheckInBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=4, max_length=32, pattern=r"^[0-9A-Za-z -]+$",
                      description="the registration's check-in code, typed or scanned "
                                  "(case, spaces and dashes do not matter)")


# What schema-valid requests may still be refused for (422 naming the field).
TERMS_RULES = {
    "end_at": "after start_at",
    "start_at": "in the future",
    "registration_opens_at": "before registration_closes_at",
    "registration_closes_at": "after registration_opens_at, not after start_at",
    "cancel_deadline_at": "not after start_at",
    "price": "0 when free, at least 1 when cash or points",
    "cover_media_id": "the organiser's ready image",
    "cover_url": "not with cover_media_id",
    "form_fields": "distinct keys; options for choice fields only, and at least one; "
                   "no sensitive word in a label or an option",
    "title": "no word of the sensitive-word list", "description": "no sensitive word",
    "place_name": "no sensitive word", "place_address": "no sensitive word",
}
SCREENED_FIELDS = ("title", "description", "place_name", "place_address")
ANSWER_RULES = {"answers": "the activity's form fields: required ones filled, phone a mainland "
                           "mobile number, number a number, choice one of its options, "
                           "date YYYY-MM-DD; no other keys"}


def utc(value: dt.datetime) -> dt.datetime:
    """An offset-carrying time from the API as naive UTC, as stored."""
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Request values as columns: times naive UTC, form fields plain dicts."""
    out = dict(values)
    for name in TIME_FIELDS:
        if out.get(name) is not None:
            out[name] = utc(out[name])
    if out.get("form_fields") is not None:
        out["form_fields"] = [f.model_dump() if isinstance(f, FormField) else dict(f)
                              for f in out["form_fields"]]
    return out


def screen_texts(values: dict[str, Any]) -> list[str]:
    """The organiser's text that users see (the given ones of title, description, place and
    the form's labels and options) holds no hard-listed word (422 SensitiveContent naming the
    field, e.g. `form_fields.1.options.0`); returns the soft-listed words found, which are
    allowed (activities have no review queue: organisers are known merchants and admins) and
    kept in the audit entry."""
    soft: list[str] = []
    for name in SCREENED_FIELDS:
        if values.get(name):
            soft += screen_text(values[name], name)
    for i, spec in enumerate(values.get("form_fields") or []):
        soft += screen_text(spec["label"], f"form_fields.{i}.label")
        for j, option in enumerate(spec.get("options") or []):
            soft += screen_text(option, f"form_fields.{i}.options.{j}")
    return list(dict.fromkeys(soft))


def check_terms(terms: dict[str, Any], now: dt.datetime, *, new: bool) -> None:
    """An activity's whole terms (stored values with the changes applied) hold together.
    `new`: being created or (re)published, so its start must lie ahead."""
    problems = []
    start, end = terms["start_at"], terms["end_at"]
    opens, closes = terms["registration_opens_at"], terms["registration_closes_at"]
    if end <= start:
        problems.append(field_error("end_at", "must be after start_at"))
    if new and start <= now:
        problems.append(field_error("start_at", "must be in the future"))
    if closes > start:
        problems.append(field_error("registration_closes_at", "must not be after start_at"))
    if opens >= closes:
        problems.append(field_error("registration_opens_at",
                                    "must be before registration_closes_at"))
    if terms["cancel_deadline_at"] > start:
        problems.append(field_error("cancel_deadline_at", "must not be after start_at"))
    if (terms["price_type"] == "free") != (terms["price"] == 0):
        problems.append(field_error("price", "0 when free, at least 1 when cash or points"))
    if terms.get("cover_media_id") and terms.get("cover_url"):
        problems.append(field_error("cover_url", "give cover_media_id or cover_url, not both"))
    keys: set[str] = set()
    for i, spec in enumerate(terms["form_fields"]):
        if spec["key"] in keys:
            problems.append(field_error(f"form_fields.{i}.key", "repeats another field's key"))
        keys.add(spec["key"])
        if (spec["type"] == "choice") != bool(spec.get("options")):
            problems.append(field_error(f"form_fields.{i}.options",
                                        "choice fields need options; other types take none"))
    if problems:
        raise ActivityInvalid(errors=problems)


def _answer_problem(spec: dict[str, Any], value: str) -> str | None:
    kind = spec["type"]
    if len(value) > ANSWER_MAX:
        return f"at most {ANSWER_MAX} characters"
    if kind == "phone" and not PHONE.match(value):
        return "must be a mainland mobile number (11 digits)"
    if kind == "number" and not NUMBER.match(value):
        return "must be a number"
    if kind == "choice" and value not in spec.get("options", []):
        return "must be one of the options"
    if kind == "date":
        try:
            if not DATE.match(value):
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            return "must be a date, YYYY-MM-DD"
    return None


def check_answers(form_fields: list[dict[str, Any]], answers: dict[str, str]) -> dict[str, str]:
    """The answers to keep (trimmed, blanks left out), or RegistrationFormInvalid naming each
    wrong answer (`answers.<key>`). Values are never put in the messages (a phone is PII)."""
    by_key = {spec["key"]: spec for spec in form_fields}
    kept: dict[str, str] = {}
    problems = [field_error(f"answers.{key[:40]}", "not a field of this activity")
                for key in answers if key not in by_key]
    for key, spec in by_key.items():
        value = " ".join(str(answers.get(key, "")).split())
        if not value:
            if spec.get("required"):
                problems.append(field_error(f"answers.{key}", f"{spec['label']} is required"))
            continue
        problem = _answer_problem(spec, value)
        if problem:
            problems.append(field_error(f"answers.{key}", problem))
        kept[key] = value
    if problems:
        raise RegistrationFormInvalid(errors=problems)
    return kept
