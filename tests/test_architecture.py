"""The house's structure as tests: every hook a lower domain runs is connected once the
domains are wired. The layer contracts themselves are import-linter's (`make check`,
pyproject.toml)."""
from __future__ import annotations

import pytest

import pawhome.domains  # noqa: F401  (the wiring every composition root does)
from pawhome.platform.hooks import Hook, all_hooks


def test_every_required_hook_has_a_connection_once_the_domains_are_wired():
    hooks = [hook for hook in all_hooks() if not hook.name.startswith("test.")]  # not ours below
    assert {"identity.user_blocked", "community.post_submitted", "community.comment_submitted",
            "media.needs_review"} <= {hook.name for hook in hooks}
    missing = [hook.name for hook in hooks if hook.required and not hook.connected]
    assert missing == []


@pytest.mark.gen_test
async def test_a_hook_runs_its_functions_in_order_and_refuses_to_run_unwired():
    unwired = Hook("test.unwired")
    with pytest.raises(RuntimeError, match="test.unwired"):
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
