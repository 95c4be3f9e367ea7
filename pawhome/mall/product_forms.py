"""What a merchant sends for a product and its SKUs, and the checks the schema cannot state:
a SKU set's spec values against the product's spec attributes, prices against each other.

Money is integer fen: a price is 1 fen to MAX_PRICE_FEN; a float is refused (5.0 is the
integer 5, as JSON Schema has it; 5.5 is 422). docs/mall.md ("Catalogue").
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.community import SPECIES
from models.mall import PRODUCT_KINDS
from pawhome.platform import codec
from pawhome.platform.errors import ValidationFailed, field_error
from pawhome.platform.fields import NOT_BLANK, Id, distinct, no_null_default

MAX_IMAGES = 9
MAX_TAGS = 10
MAX_DESCRIPTION = 5000
MAX_PRICE_FEN = 99_999_999  # ¥999,999.99
MAX_STOCK = 1_000_000
MAX_WEIGHT_G = 1_000_000
MAX_PURCHASE_LIMIT = 999
MAX_SKUS = 200
MAX_SPEC_ATTRS = 3
MAX_SPEC_VALUES = 30
MAX_STOCK_DELTA = 1_000_000
MAX_POINTS_PRICE = 100_000_000

Species = Literal["dog", "cat", "rabbit", "bird", "other"]
assert set(Species.__args__) == set(SPECIES)  # type: ignore[attr-defined]
Kind = Literal["physical", "virtual_pet_food", "virtual_pet_toy", "virtual_pet_accessory"]
assert Kind.__args__ == PRODUCT_KINDS  # type: ignore[attr-defined]

Tag = Annotated[str, Field(min_length=1, max_length=16, pattern=NOT_BLANK)]
SpecText = Annotated[str, Field(min_length=1, max_length=20, pattern=NOT_BLANK)]

PRODUCT_RULES = {
    "media_ids": "the product's merchant's ready images (up to 9)",
    "video_media_id": "the product's merchant's ready video",
    "category_id": "an existing, enabled category (any level)",
    "name": "no word of the sensitive-word list", "subtitle": "no sensitive word",
    "description": "no sensitive word", "brand": "no sensitive word",
    "tags": "no sensitive word",
}
SKU_RULES = {
    "spec_attrs": "attribute names distinct; each attribute's values distinct (ignoring case "
                  "and width); no sensitive word",
    "skus": "each SKU's spec_values name one value of each attribute, in order; no two SKUs "
            "alike; original_price 0 or at least the price; image_media_id the merchant's "
            "ready image; with no attributes, exactly one SKU",
}


def _distinct_ids(value: list[int] | None) -> list[int] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("ids must not repeat")
    return value


def _clean_tags(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return list(dict.fromkeys(t.strip() for t in value))


def _distinct_not_null(schema: dict[str, Any]) -> None:
    no_null_default(schema)
    schema["uniqueItems"] = True


class ProductBody(BaseModel):
    """A new product (POST /v1/merchant/products). It starts as a draft."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, pattern=NOT_BLANK)
    kind: Kind = Field("physical", description="a virtual kind is delivered into the buyer's "
                                               "inventory when paid, never shipped")
    subtitle: str = Field("", max_length=120)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    media_ids: list[Id] = Field(default_factory=list, max_length=MAX_IMAGES,
                                json_schema_extra=distinct("images, the first is the cover"))
    video_media_id: Id | None = None
    category_id: Id | None = None
    brand: str = Field("", max_length=32)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    pet_types: list[Species] = Field(default_factory=list, max_length=len(SPECIES))

    @field_validator("media_ids")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        return _distinct_ids(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return _clean_tags(value)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        return value.strip()

    @field_validator("pet_types")
    @classmethod
    def _dedupe_types(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ProductPatch(BaseModel):
    """Changes to a product (PATCH): only the fields sent change. `video_media_id` and
    `category_id` may be null (none); the others may be left out, never sent as null."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(None, min_length=1, max_length=60,  # type: ignore[assignment]
                      pattern=NOT_BLANK, json_schema_extra=no_null_default)
    subtitle: str = Field(None, max_length=120,  # type: ignore[assignment]
                          json_schema_extra=no_null_default)
    description: str = Field(None, max_length=MAX_DESCRIPTION,  # type: ignore[assignment]
                             json_schema_extra=no_null_default)
    media_ids: list[Id] = Field(None, max_length=MAX_IMAGES,  # type: ignore[arg-type]
                                json_schema_extra=_distinct_not_null)
    video_media_id: Id | None = None
    category_id: Id | None = None
    brand: str = Field(None, max_length=32,  # type: ignore[assignment]
                       json_schema_extra=no_null_default)
    tags: list[Tag] = Field(None, max_length=MAX_TAGS,  # type: ignore[arg-type]
                            json_schema_extra=no_null_default)
    pet_types: list[Species] = Field(None,  # type: ignore[arg-type]
                                     max_length=len(SPECIES),
                                     json_schema_extra=no_null_default)

    @field_validator("media_ids")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        return _distinct_ids(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return _clean_tags(value)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        return value.strip()

    @field_validator("pet_types")
    @classmethod
    def _dedupe_types(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def changes(self) -> dict[str, Any]:
        """The fields sent, by name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class SpecAttr(BaseModel):
    """A spec attribute and its values, e.g. {"name": "口味", "values": ["鸡肉", "牛肉"]}."""
    model_config = ConfigDict(extra="forbid")

    name: SpecText
    values: list[SpecText] = Field(min_length=1, max_length=MAX_SPEC_VALUES)


class SkuItem(BaseModel):
    """One SKU of the set. `stock` is the initial stock of a SKU the set adds; an existing
    SKU keeps its stock (it moves only through stock adjustments and orders)."""
    model_config = ConfigDict(extra="forbid")

    spec_values: list[SpecText] = Field(default_factory=list, max_length=MAX_SPEC_ATTRS,
                                        description="one value of each attribute, in order")
    price: int = Field(ge=0, le=MAX_PRICE_FEN,
                       description="fen; 0 only with a points price (sold for points only)")
    original_price: int = Field(0, ge=0, le=MAX_PRICE_FEN,
                                description="fen; 0: none (else at least the price)")
    stock: int = Field(0, ge=-1, le=MAX_STOCK,
                       description="initial stock of a new SKU; -1: unlimited (virtual goods)")
    points_price: int = Field(0, ge=0, le=MAX_POINTS_PRICE,
                              description="points that buy one instead of the price; 0: none")
    weight_g: int = Field(0, ge=0, le=MAX_WEIGHT_G)
    image_media_id: Id | None = None
    code: str = Field("", max_length=64, description="the merchant's own SKU code")
    purchase_limit: int = Field(0, ge=0, le=MAX_PURCHASE_LIMIT,
                                description="most one buyer may order at once; 0: no limit")


class SkuSetBody(BaseModel):
    """The whole SKU set of a product (PUT): SKUs matched by their spec values are updated,
    new ones added, the rest retired (kept for orders and carts, no longer sold)."""
    model_config = ConfigDict(extra="forbid")

    spec_attrs: list[SpecAttr] = Field(default_factory=list, max_length=MAX_SPEC_ATTRS)
    skus: list[SkuItem] = Field(min_length=1, max_length=MAX_SKUS)


class StockAdjustmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: int = Field(ge=-MAX_STOCK_DELTA, le=MAX_STOCK_DELTA,
                       description="units added (> 0) or taken (< 0); not 0")
    reason: str = Field(min_length=1, max_length=255, pattern=NOT_BLANK,
                        description="why (a count, damage, a restock)")


# -- the checks the schema cannot state ----------------------------------------------------------


def fold(value: str) -> str:
    """How two spec texts are compared (and how MariaDB's collation compares them)."""
    return unicodedata.normalize("NFKC", value).strip().casefold()


def spec_key(values: list[str]) -> str:
    """A SKU's key among its product's: a digest of its values, exact whatever the
    collation."""
    return hashlib.sha1(codec.dumps([fold(v) for v in values])).hexdigest()


def spec_text(attrs: list[dict[str, Any]], values: list[str]) -> str:
    return "; ".join(f"{a['name']}:{v}" for a, v in zip(attrs, values, strict=True))


@dataclass(frozen=True)
class CheckedSku:
    key: str
    values: list[str]
    text: str
    item: SkuItem


def check_sku_set(body: SkuSetBody) -> tuple[list[dict[str, Any]], list[CheckedSku]]:
    """The normalised spec attributes and SKUs, or 422 naming every offending position."""
    problems = []
    attrs: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, attr in enumerate(body.spec_attrs):
        name = attr.name.strip()
        if fold(name) in names:
            problems.append(field_error(f"spec_attrs.{i}.name", "names the same attribute twice"))
        names.add(fold(name))
        values = [v.strip() for v in attr.values]
        if len({fold(v) for v in values}) != len(values):
            problems.append(field_error(f"spec_attrs.{i}.values", "values must not repeat"))
        attrs.append({"name": name, "values": values})
    if not attrs and len(body.skus) != 1:
        problems.append(field_error("skus", "a product without spec attributes has one SKU"))
    checked: list[CheckedSku] = []
    seen: set[str] = set()
    for i, item in enumerate(body.skus):
        where = f"skus.{i}"
        values = [v.strip() for v in item.spec_values]
        if len(values) != len(attrs):
            problems.append(field_error(f"{where}.spec_values",
                                        f"needs {len(attrs)} values, one per attribute"))
            continue
        canonical = []
        for spec, value in zip(attrs, values, strict=True):
            match = next((v for v in spec["values"] if fold(v) == fold(value)), None)
            if match is None:
                problems.append(field_error(f"{where}.spec_values",
                                            f"{value!r} is not a value of {spec['name']}"))
            canonical.append(match or value)
        key = spec_key(canonical)
        if key in seen:
            problems.append(field_error(f"{where}.spec_values", "the same SKU twice"))
        seen.add(key)
        if item.price == 0 and item.points_price == 0:
            problems.append(field_error(f"{where}.price", "at least 1 fen, unless the SKU has "
                                                          "a points price"))
        if item.original_price and item.original_price < item.price:
            problems.append(field_error(f"{where}.original_price",
                                        "0, or at least the price"))
        checked.append(CheckedSku(key, canonical, spec_text(attrs, canonical), item))
    if problems:
        raise ValidationFailed("The SKU set does not fit the spec attributes", errors=problems)
    return attrs, checked
