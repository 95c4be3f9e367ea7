"""The transaction rule (docs/architecture.md) as a test: a REST handler parses, authorises,
calls one domain function with `self.r` and replies. It never opens a database session or
touches Redis through the resources (`….r.db`, `….r.cache`), and never imports the tables
(`models`): the domain function owns its unit of work and what follows the commit."""
from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parent.parent / "handlers"

def _breaches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in ("db", "cache") and \
                isinstance(node.value, ast.Attribute) and node.value.attr == "r":
            found.append(f"{where} uses the resources' {node.attr}")
        elif isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] == "models"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "models":
            found.append(f"{where} imports {node.module}")
    return found


def test_handlers_never_open_a_session_touch_redis_or_import_the_tables():
    files = sorted(HANDLERS.glob("*.py"))
    assert len(files) > 10  # the scan sees the handlers
    assert [breach for path in files for breach in _breaches(path)] == []


def test_the_scan_finds_what_it_forbids(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text(
        "from models.community import Post\n"
        "import models.users\n"
        "class H:\n"
        "    async def get(self):\n"
        "        async with self.r.db.session() as session:\n"
        "            await self.r.cache.redis.get('k')\n",
        encoding="utf-8")
    assert len(_breaches(offender)) == 4
