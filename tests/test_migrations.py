"""Models and migrations agree, on MariaDB and on SQLite, and the migrations run both ways.

`alembic revision --autogenerate` would write exactly the diff computed here, so an empty diff
means no model change is missing a migration (and no migration drifted from the models).
"""
from __future__ import annotations

import asyncio
import os

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

import models
from models.base import include_object
from pawhome.platform import migrate


def schema_diff(url: str) -> list:
    """What autogenerate would change to make the database at `url` match the models."""

    def compare(connection) -> list:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False,
                              "render_as_batch": connection.dialect.name == "sqlite",
                              "include_object": include_object})
        return compare_metadata(context, models.Base.metadata)

    async def run() -> list:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def table_names(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"


def test_mariadb_schema_migrated_to_head_matches_the_models():
    diff = schema_diff(os.environ["DATABASE_URL"])  # the run's database, migrated at start
    assert diff == [], f"models and migrations disagree on MariaDB: {diff}"


def test_sqlite_schema_migrated_to_head_matches_the_models(tmp_path):
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    diff = schema_diff(url)
    assert diff == [], f"models and migrations disagree on SQLite: {diff}"


def test_sqlite_upgrade_downgrade_to_base_and_upgrade_again(tmp_path):
    url = sqlite_url(tmp_path)
    model_tables = set(models.Base.metadata.tables)
    migrate.upgrade(url)
    assert model_tables <= table_names(url)
    migrate.downgrade(url, "base")
    assert table_names(url) <= {"alembic_version"}, "downgrade to base left tables behind"
    migrate.upgrade(url)
    assert model_tables <= table_names(url)
    assert schema_diff(url) == []


def test_a_missing_migration_is_detected(tmp_path):
    """The check can fail: a table the migrations never created shows up in the diff."""
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    diff = schema_diff(url)
    added = {op[1].name for op in diff if op[0] == "add_table"}
    assert set(models.Base.metadata.tables) <= added
