"""Hooks: where a lower domain lets a higher one act, without importing it.

Layers point down only (docs/architecture.md). When a change in a lower domain must have an
effect owned by a higher one — a block ends the follows between two users (identity →
community), a moderation verdict changes a post (moderation decides, community writes) — the
lower domain declares a `Hook` and runs it inside its unit of work; the higher domain connects
a function to it when its module is imported. `pawhome.domains` imports every such module, and
each composition root (gateway, worker, tools) imports `pawhome.domains`, so the connections
are in place before the first request or task.

A hook's functions run in the order they were connected, in the caller's transaction, and
an exception from one propagates (the unit of work rolls back): a hook is part of the change,
not a notification about it. After-commit effects stay with the function that commits.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")

_HOOKS: list[Hook[...]] = []


class Hook(Generic[P]):
    """A named call-back point. `required`: running it with nothing connected is a wiring
    error (a domain module missing from pawhome.domains), not a silent no-op."""

    def __init__(self, name: str, *, required: bool = True) -> None:
        self.name = name
        self.required = required
        self._functions: list[Callable[P, Awaitable[object]]] = []
        _HOOKS.append(self)

    def connect(self, function: Callable[P, Awaitable[object]]) -> Callable[P, Awaitable[object]]:
        """Connect `function` (usable as a decorator); connecting it twice is a no-op."""
        if function not in self._functions:
            self._functions.append(function)
        return function

    @property
    def connected(self) -> tuple[Callable[P, Awaitable[object]], ...]:
        return tuple(self._functions)

    async def run(self, *args: P.args, **kwargs: P.kwargs) -> None:
        if not self._functions and self.required:
            raise RuntimeError(f"hook {self.name} has nothing connected: is the module that "
                               "connects it imported by pawhome.domains?")
        for function in self._functions:
            await function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Hook({self.name!r}, {len(self._functions)} connected)"


def all_hooks() -> list[Hook[...]]:
    """Every hook declared so far (the wiring test checks each required one is connected)."""
    return list(_HOOKS)
