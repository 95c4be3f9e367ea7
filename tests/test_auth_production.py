"""In production settings the development login does not exist."""
from __future__ import annotations

import os

import pytest

from settings import Settings


@pytest.fixture
def settings():
    return Settings(mode="production", jwt_secret="p" * 48, wechat_secret="prod-secret",
                    broker_url=os.environ["BROKER_URL"])


@pytest.mark.gen_test
async def test_dev_login_is_404_in_production(api, settings):
    settings.check_production()  # a complete production configuration
    assert api.app.settings["resources"].settings.mode == "production"
    (await api.post("/v1/auth/dev-login", json={"openid": "o-anyone"})).error(404, code=40400)
    (await api.post("/v1/auth/dev-login", json={"openid": "o-anyone", "role": "admin"})).error(
        404, code=40400)


@pytest.mark.gen_test
async def test_real_logins_still_exist_in_production(api, settings):
    # Routed and validating: an empty body is a field error, not a 404.
    (await api.post("/v1/auth/wechat-login", json={})).error(422, field="code")
