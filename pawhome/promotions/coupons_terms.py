"""The terms of a coupon, without the database: what an issuer may send for a template, which
goods a coupon covers, what it takes off them, and how a held coupon shows in the wallet.

Shared by the template and claim functions (coupons.py) and by checkout (coupons_checkout.py)
so that the preview, the order and the "available coupons" list compute a saving one way.
Validity dates are days of Asia/Shanghai (the shop's calendar), stored as naive UTC.
docs/promotions.md ("Coupons").
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from models.coupons import CouponTemplate, UserCoupon
from pawhome.platform.errors import CouponTermsInvalid, field_error
from pawhome.platform.fields import NOT_BLANK, Id, distinct, iso_date_text, no_null_default

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_FEN = 99_999_999  # ¥999,999.99, the catalogue's highest price
MAX_QUANTITY = 1_000_000
MAX_PER_USER = 100
MAX_VALID_DAYS = 365
MAX_PRODUCTS = 100
FIRST_DAY, LAST_DAY = dt.date(2020, 1, 1), dt.date(2099, 12, 31)
CODE = r"^[A-Za-z0-9]{4,32}$"

Kind = Literal["threshold", "percent", "no_threshold"]
Scope = Literal["all", "category", "merchant", "products"]
Fen = Annotated[int, Field(ge=0, le=MAX_FEN)]


def _day(value: object) -> object:
    """YYYY-MM-DD text as a date (the gateway validates bodies strictly, and a validator's
    output is checked as Python, where strict mode takes no text for a date)."""
    checked = iso_date_text(value)
    return dt.date.fromisoformat(checked) if isinstance(checked, str) else checked


Day = Annotated[dt.date, BeforeValidator(_day)]

TEMPLATE_RULES = {
    "kind": "threshold: amount_off ≥ 1 and min_spend ≥ amount_off; no_threshold: amount_off "
            "≥ 1, min_spend 0; percent: percent_off 1-99 and max_discount ≥ 1, amount_off 0",
    "scope": "category: category_id of an existing category; merchant: merchant_id of a shop "
             "(a merchant: its own, or left out); products: product_ids of existing products "
             "(a merchant: its own); all: none of these",
    "valid_from": "fixed dates (valid_from..valid_to, 2020-01-01 to 2099-12-31, Asia/Shanghai, "
                  "valid_to not before today) or valid_days, exactly one of the two",
    "code": "with claim_method code: a code no other coupon has; otherwise left out",
    "total_quantity": "not below the number already claimed",
}


def _distinct_ids(value: list[int] | None) -> list[int] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("ids must not repeat")
    return value


class TemplateTerms(BaseModel):
    """The discount, where it applies and how long a claimed coupon lasts: what can no longer
    change once a coupon of the template was claimed."""
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    amount_off: Fen = Field(0, description="fen taken off (threshold, no_threshold)")
    percent_off: int = Field(0, ge=0, le=99, description="percent taken off (percent)")
    max_discount: Fen = Field(0, description="the most a percent coupon takes off, fen")
    min_spend: Fen = Field(0, description="eligible goods needed, fen (满 X 减 Y: X)")
    scope: Scope = "all"
    category_id: Id | None = Field(None, description="scope category: it and its subtree")
    merchant_id: Id | None = Field(None, description="scope merchant: the shop")
    product_ids: list[Id] = Field(default_factory=list, max_length=MAX_PRODUCTS,
                                  json_schema_extra=distinct("scope products"))
    valid_from: Day | None = Field(None, description="fixed validity: first day")
    valid_to: Day | None = Field(None, description="fixed validity: last day (inclusive)")
    valid_days: int | None = Field(None, ge=1, le=MAX_VALID_DAYS,
                                   description="or valid for this many days after claiming")
    new_users_only: bool = Field(False, description="only users who never paid an order")
    claim_method: Literal["button", "code"] = "button"
    code: str | None = Field(None, pattern=CODE)

    _distinct = field_validator("product_ids")(_distinct_ids)


class TemplateBody(TemplateTerms):
    """A new coupon template (POST /v1/merchant/coupon-templates)."""
    name: str = Field(min_length=1, max_length=40, pattern=NOT_BLANK)
    description: str = Field("", max_length=200)
    total_quantity: int = Field(ge=1, le=MAX_QUANTITY)
    per_user_limit: int = Field(1, ge=1, le=MAX_PER_USER)


class TemplatePatch(BaseModel):
    """Changes to a template. Once a coupon of it was claimed only name, description,
    total_quantity and per_user_limit may change (409 otherwise)."""
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=40, pattern=NOT_BLANK,
                             json_schema_extra=no_null_default)
    description: str | None = Field(None, max_length=200, json_schema_extra=no_null_default)
    total_quantity: int | None = Field(None, ge=1, le=MAX_QUANTITY,
                                       json_schema_extra=no_null_default)
    per_user_limit: int | None = Field(None, ge=1, le=MAX_PER_USER,
                                       json_schema_extra=no_null_default)
    terms: TemplateTerms | None = Field(None, json_schema_extra=no_null_default,
                                        description="all the terms anew (before any claim)")


# -- days and times ----------------------------------------------------------------------------


def day_start(day: dt.date) -> dt.datetime:
    """Midnight starting an Asia/Shanghai day, as the naive UTC the tables store."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def local_day(moment: dt.datetime) -> dt.date:
    return moment.replace(tzinfo=dt.UTC).astimezone(SHANGHAI).date()


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


def check_terms(terms: TemplateTerms, today: dt.date, prefix: str = "") -> None:
    """What the schema cannot state about the terms alone (CouponTermsInvalid, 422; fields
    named under `prefix`)."""
    errors: list[dict[str, str]] = []
    if terms.kind in ("threshold", "no_threshold"):
        if terms.amount_off < 1:
            errors.append(field_error("amount_off", "at least 1 fen off"))
        if terms.percent_off or terms.max_discount:
            errors.append(field_error("percent_off", "only for a percent coupon"))
        if terms.kind == "threshold" and terms.min_spend < max(terms.amount_off, 1):
            errors.append(field_error("min_spend", "a threshold of at least the amount off"))
        if terms.kind == "no_threshold" and terms.min_spend:
            errors.append(field_error("min_spend", "a no-threshold coupon has none"))
    else:
        if not 1 <= terms.percent_off <= 99:
            errors.append(field_error("percent_off", "1 to 99 percent off"))
        if terms.max_discount < 1:
            errors.append(field_error("max_discount", "a percent coupon needs a cap"))
        if terms.amount_off:
            errors.append(field_error("amount_off", "not for a percent coupon"))
    targets = {"category": terms.category_id, "merchant": terms.merchant_id,
               "products": terms.product_ids or None}
    for scope, target in targets.items():
        if scope != terms.scope and target is not None:
            errors.append(field_error(_target_field(scope), f"only for scope {scope}"))
    if terms.scope == "category" and terms.category_id is None:
        errors.append(field_error("category_id", "scope category needs a category"))
    if terms.scope == "products" and not terms.product_ids:
        errors.append(field_error("product_ids", "scope products needs products"))
    fixed = terms.valid_from is not None or terms.valid_to is not None
    if fixed == (terms.valid_days is not None):
        errors.append(field_error("valid_from", "fixed dates or valid_days, exactly one"))
    elif fixed:
        if terms.valid_from is None or terms.valid_to is None:
            errors.append(field_error("valid_to", "fixed validity needs both days"))
        elif not FIRST_DAY <= terms.valid_from <= terms.valid_to <= LAST_DAY:
            errors.append(field_error("valid_to", "valid_from ≤ valid_to, within 2020-2099"))
        elif terms.valid_to < today:
            errors.append(field_error("valid_to", "already over"))
    if (terms.claim_method == "code") != (terms.code is not None):
        errors.append(field_error("code", "a code exactly when claim_method is code"))
    if errors:
        raise CouponTermsInvalid(errors=[field_error(prefix + e["field"], e["message"])
                                         for e in errors])


def _target_field(scope: str) -> str:
    return {"category": "category_id", "merchant": "merchant_id",
            "products": "product_ids"}[scope]


def apply_terms(template: CouponTemplate, terms: TemplateTerms) -> None:
    template.kind, template.amount_off = terms.kind, terms.amount_off
    template.percent_off, template.max_discount = terms.percent_off, terms.max_discount
    template.min_spend, template.scope = terms.min_spend, terms.scope
    template.scope_category_id = terms.category_id
    template.scope_merchant_id = terms.merchant_id
    template.scope_product_ids = list(terms.product_ids)
    if terms.valid_from is not None and terms.valid_to is not None:
        template.starts_at = day_start(terms.valid_from)
        template.ends_at = day_start(terms.valid_to + dt.timedelta(days=1))
        template.valid_days = 0
    else:
        template.starts_at = template.ends_at = None
        template.valid_days = terms.valid_days or 0
    template.new_users_only, template.claim_method = terms.new_users_only, terms.claim_method
    template.code = terms.code.upper() if terms.code else None


def validity_for_claim(template: CouponTemplate, now: dt.datetime) -> tuple[dt.datetime,
                                                                            dt.datetime]:
    """(valid_from, valid_until) of a coupon claimed now."""
    if template.ends_at is not None:
        return template.starts_at or now, template.ends_at
    return now, now + dt.timedelta(days=template.valid_days)


# -- what a coupon covers and saves -----------------------------------------------------------


@dataclass(frozen=True)
class Goods:
    """A line of goods as a coupon sees it."""
    product_id: int
    merchant_id: int
    category_id: int | None
    amount: int  # fen


def covers(template: CouponTemplate, goods: Goods, subtree: frozenset[int]) -> bool:
    """Whether the coupon applies to these goods. A shop's coupon covers its own goods only;
    `subtree` is the category and its descendants (scope category)."""
    if template.merchant_id is not None and goods.merchant_id != template.merchant_id:
        return False
    if template.scope == "category":
        return goods.category_id is not None and goods.category_id in subtree
    if template.scope == "merchant":
        return goods.merchant_id == template.scope_merchant_id
    if template.scope == "products":
        return goods.product_id in {int(p) for p in template.scope_product_ids or []}
    return True


def eligible_amount(template: CouponTemplate, goods: Iterable[Goods],
                    subtree: frozenset[int]) -> int:
    return sum(g.amount for g in goods if covers(template, g, subtree))


def discount(template: CouponTemplate, eligible: int) -> int:
    """Fen off `eligible` fen of covered goods: 0 below the threshold; never more than the
    goods (a percent coupon rounds down to the fen and stops at its cap)."""
    if eligible <= 0 or eligible < template.min_spend:
        return 0
    if template.kind == "percent":
        return min(eligible * template.percent_off // 100, template.max_discount, eligible)
    return min(template.amount_off, eligible)


def shortfall_reason(template: CouponTemplate, eligible: int) -> str:
    if eligible <= 0:
        return "no item of this checkout is covered by this coupon"
    return f"spend ¥{(template.min_spend - eligible) / 100:.2f} more on covered items"


# -- views -------------------------------------------------------------------------------------


def template_view(template: CouponTemplate) -> dict[str, Any]:
    """What a buyer sees of a template (and the issuer, with `issuer_view`)."""
    return {
        "id": template.id, "name": template.name, "description": template.description,
        "kind": template.kind, "amount_off": template.amount_off,
        "percent_off": template.percent_off, "max_discount": template.max_discount,
        "min_spend": template.min_spend, "scope": template.scope,
        "category_id": template.scope_category_id,
        "merchant_id": template.scope_merchant_id if template.scope == "merchant"
        else template.merchant_id,
        "product_ids": [int(p) for p in template.scope_product_ids or []],
        "issuer": "merchant" if template.merchant_id is not None else "platform",
        "valid_from": iso(template.starts_at), "valid_until": iso(template.ends_at),
        "valid_days": template.valid_days or None,
        "new_users_only": template.new_users_only, "claim_method": template.claim_method,
        "remaining": max(0, template.total_quantity - template.issued_count),
        "per_user_limit": template.per_user_limit,
    }


def issuer_view(template: CouponTemplate) -> dict[str, Any]:
    return {**template_view(template), "code": template.code,
            "issuer_merchant_id": template.merchant_id, "created_by": template.created_by,
            "total_quantity": template.total_quantity, "issued_count": template.issued_count,
            "status": template.status, "stopped_at": iso(template.stopped_at),
            "created_at": iso(template.created_at), "updated_at": iso(template.updated_at)}


def state_of(coupon: UserCoupon, now: dt.datetime) -> str:
    """unused | locked | used | expired: expiry is computed, never swept."""
    if coupon.status == "unused" and coupon.valid_until <= now:
        return "expired"
    return coupon.status


def coupon_view(coupon: UserCoupon, template: CouponTemplate,
                now: dt.datetime) -> dict[str, Any]:
    """A coupon in the wallet, with the terms of its template."""
    return {"id": coupon.id, "template_id": template.id, "state": state_of(coupon, now),
            "valid_from": iso(coupon.valid_from), "valid_until": iso(coupon.valid_until),
            "usable_now": coupon.status == "unused" and coupon.valid_from <= now
            < coupon.valid_until,
            "order_id": coupon.order_id, "discount_amount": coupon.discount_amount,
            "claimed_at": iso(coupon.claimed_at), "used_at": iso(coupon.used_at),
            "terms": template_view(template)}
