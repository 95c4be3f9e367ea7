"""The house's structure as tests: every hook a lower domain runs is connected once the
domains are wired, and the import graph has no loop at all (imports inside functions count).
The layer contracts themselves are import-linter's (`make check`, pyproject.toml)."""
from __future__ import annotations

import grimp
import pytest

import pawhome.domains  # noqa: F401  (the wiring every composition root does)
from pawhome.platform.hooks import Hook, all_hooks

PACKAGES = ("pawhome", "gateway", "handlers", "workers", "models", "wsclient")


def test_every_required_hook_has_a_connection_once_the_domains_are_wired():
    hooks = [hook for hook in all_hooks() if not hook.name.startswith("test.")]  # not ours below
    assert {"identity.user_blocked", "community.post_submitted", "community.comment_submitted",
            "media.needs_review"} <= {hook.name for hook in hooks}
    missing = [hook.name for hook in hooks if hook.required and not hook.connected]
    assert missing == []


@pytest.mark.gen_test
async def test_a_hook_runs_its_functions_in_order_and_refuses_to_run_unwired():
    unwired = Hook("test.unwired")
    with pytest.raises(RuntimeError, match=r"test\.unwired"):
        await unwired.run(1)
    calls: list[tuple[str, int]] = []

    async def first(value: int) -> None:
        calls.append(("first", value))

    async def second(value: int) -> None:
        calls.append(("second", value))

    hook = Hook("test.wired")
    hook.connect(first)
    hook.connect(second)
    hook.connect(first)  # a second connection of the same function is a no-op
    await hook.run(7)
    assert calls == [("first", 7), ("second", 7)]
    assert await Hook("test.optional", required=False).run(1) is None


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others_not_even_inside_a_function():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False,
                              exclude_type_checking_imports=True, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_loop():
    graph = grimp.ImportGraph()
    for module in ("a", "a.one", "a.two", "a.three"):
        graph.add_module(module)
    graph.add_import(importer="a.one", imported="a.two")
    graph.add_import(importer="a.two", imported="a.three")
    graph.add_import(importer="a.three", imported="a.one")
    assert _cycles(graph) == [["a.one", "a.three", "a.two"]]
