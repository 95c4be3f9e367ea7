"""The external AI provider adapter (docs/virtual-pet.md "Adapter") against a fake provider
server (tests/fakes/ai_provider.py), through our real HTTP client: a good reply makes the pet;
a timeout, an error status, a reply of the wrong shape or a sprite that is not an image fall
back to the baseline on the same photo; a provider error is retried, a bad reply is not.

The generation's work (`run_generation`, what the `ai` task calls) runs in this process with
settings naming the fake; the rows are written directly, so no queued task races it.
"""
from __future__ import annotations

import pytest

from pawhome.platform.resources import Resources
from pawhome.virtualpet import generation
from tests.fakes.ai_provider import PARAMS, FakeAiProvider
from tests.generation_support import cat_photo, stored_photo, written_generation


@pytest.fixture(scope="module")
def provider() -> FakeAiProvider:
    return FakeAiProvider()


@pytest.fixture
def with_provider(settings, io_loop, provider):
    """Resources whose settings send generations to the fake's `behaviour` path."""
    made: list[Resources] = []

    def make(behaviour: str, timeout: float = 1.0, retries: int = 1) -> Resources:
        resources = Resources(settings.model_copy(update={
            "vpet_ai_provider_url": provider.url(behaviour),
            "vpet_ai_provider_timeout": timeout, "vpet_ai_provider_retries": retries,
            "vpet_ai_provider_token": "fake-token"}))
        made.append(resources)
        return resources
    yield make
    for resources in made:
        io_loop.run_sync(resources.close)


async def _generate(resources, user_id: int) -> dict:
    photo = await stored_photo(resources, user_id, cat_photo())
    gen = await written_generation(resources, user_id, photo, status="queued", params=None,
                                   provider="", personality="")
    assert await generation.run_generation(resources, gen) == "done"
    return await generation.get_generation(resources, user_id, gen)


@pytest.mark.gen_test(timeout=60)
async def test_the_providers_pet_is_used_when_it_answers(api, with_provider, provider):
    me = await api.login()
    resources = with_provider("ok")
    before = provider.state.requests["ok"]
    data = await _generate(resources, me.user_id)
    assert provider.state.requests["ok"] == before + 1
    assert data["provider"] == "external" and data["personality"] == "lively"
    assert data["params"] == {**PARAMS, "breed": ""}
    assert data["sprite_url"].endswith("/sprite.webp") and data["thumb_url"]
    assert provider.state.last_body["hints"] == {}


@pytest.mark.gen_test(timeout=60)
async def test_a_provider_error_is_retried_once(api, with_provider, provider):
    me = await api.login()
    before = provider.state.requests["flaky"]
    data = await _generate(with_provider("flaky"), me.user_id)
    assert provider.state.requests["flaky"] == before + 2
    assert data["provider"] == "external"


@pytest.mark.gen_test(timeout=60)
async def test_what_goes_wrong_at_the_provider_falls_back_to_the_baseline(
        api, resources, with_provider, provider):
    me = await api.login()
    baseline = await _generate(resources, me.user_id)  # no provider configured
    assert baseline["provider"] == "baseline"
    for behaviour, attempts in (("slow", 2), ("error", 2), ("garbage", 1),
                                ("not-an-image", 1)):
        before = provider.state.requests[behaviour]
        data = await _generate(with_provider(behaviour, timeout=0.5), me.user_id)
        assert provider.state.requests[behaviour] == before + attempts, behaviour
        assert data["status"] == "done" and data["provider"] == "baseline", behaviour
        assert data["params"] == baseline["params"], behaviour
        assert data["personality"] == baseline["personality"]


@pytest.mark.gen_test(timeout=60)
async def test_a_photo_the_baseline_refuses_is_never_sent(api, with_provider, provider):
    me = await api.login()
    resources = with_provider("ok")
    photo = await stored_photo(resources, me.user_id, b"GIF89a" + b"\x00" * 40,
                               extension="gif", content_type="image/gif")
    gen = await written_generation(resources, me.user_id, photo, status="queued",
                                   params=None)
    before = provider.state.requests["ok"]
    assert await generation.run_generation(resources, gen) == "failed"
    assert provider.state.requests["ok"] == before
    data = await generation.get_generation(resources, me.user_id, gen)
    assert data["reason"] == "image is corrupt or truncated"
