"""In production settings the development login does not exist."""
from __future__ import annotations

import os

import pytest

from settings import Settings


@pytest.fixture
def settings():
    # WeChat Pay's keys come from the fake's fixture (tests/fixtures_wechatpay.py).
    return Settings(mode="production", jwt_secret="p" * 48, wechat_secret="prod-secret",
                    wechat_push_token="prod-push-token",
                    broker_url=os.environ["BROKER_URL"],
                    public_base_url="https://api.pawhome.example")


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


@pytest.mark.parametrize("missing, overrides", [
    ("JWT_SECRET", {"jwt_secret": "short"}),
    ("WECHAT_SECRET", {"wechat_secret": "wx-dev-secret"}),
    ("WECHAT_PUSH_TOKEN", {"wechat_push_token": "dev-push-token"}),
    ("REDIS_URL", {"redis_url": "memory://"}),
    ("BROKER_URL", {"broker_url": ""}),
    ("PAYMENT_PROVIDER", {"payment_provider": "simulated"}),
    ("WECHATPAY_APIV3_KEY", {"wechatpay_apiv3_key": ""}),
    ("WECHATPAY_PRIVATE_KEY", {"wechatpay_private_key": ""}),
])
def test_production_refuses_development_secrets_and_embedded_stores(settings, missing, overrides):
    incomplete = settings.model_copy(update=overrides)
    with pytest.raises(RuntimeError, match=missing):
        incomplete.check_production()


def test_embedded_mode_moderates_without_wechat_unless_told_to():
    assert Settings(mode="embedded").moderation_wechat_enabled is False
    assert Settings(mode="embedded", moderation_wechat_enabled=True).moderation_wechat_enabled
    assert Settings(mode="development").moderation_wechat_enabled is True
