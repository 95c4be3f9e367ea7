"""Embedded mode (make run): one process, SQLite under var/, in-process Redis and tasks.

`prepare_embedded` migrates the SQLite file; seeding demo data lives in pawhome.demo.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from pawhome import migrate


async def prepare_embedded(resources) -> None:
    url = resources.settings.database_url
    Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    await asyncio.get_running_loop().run_in_executor(None, migrate.upgrade, url)
