"""Declarative base and column types that behave the same on MariaDB and SQLite.

Ids are BIGINT on MariaDB and INTEGER on SQLite (SQLite only auto-increments an INTEGER
PRIMARY KEY). Timestamps are naive UTC with microseconds on MariaDB. Every MariaDB table is
utf8mb4 so emoji in nicknames and posts round-trip.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase

BigId = BigInteger().with_variant(Integer(), "sqlite")
UTCDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# unicode_520: the older utf8mb4_unicode_ci weighs every emoji the same, so "🐶" = "🐱".
MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_520_ci",
                    "mysql_engine": "InnoDB"}

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Naive UTC now: what every timestamp column stores."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # A model's own are a tuple of constraints/indexes ending with MYSQL_TABLE_ARGS.
    __table_args__: Any = MYSQL_TABLE_ARGS


# Tables a migration creates outside the models: SQLite's FTS5 index and its shadow tables.
UNMODELLED_TABLE_PREFIXES = ("search_fts",)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic autogenerate filter: leave the unmodelled tables alone."""
    return not (type_ == "table" and name and name.startswith(UNMODELLED_TABLE_PREFIXES))
