"""Fixtures for the fake WeChat and SMS servers (see tests/fakes/).

Importing this module (conftest lists it in `pytest_plugins`) starts both fakes and points
WECHAT_API_BASE and SMS_API_BASE at them before any settings are read, so gateway apps,
workers and worker subprocesses started later all talk to the fakes. SMS_PROVIDER stays
"log"; tests of the http provider build Settings(sms_provider="http", sms_api_key=...).
"""
from __future__ import annotations

import os

import pytest

from tests.fakes.sms import API_KEY as SMS_API_KEY
from tests.fakes.sms import FakeSms, FakeSmsState
from tests.fakes.wechat import FakeWeChat, FakeWeChatState

FAKE_WECHAT = FakeWeChat()
FAKE_SMS = FakeSms()
os.environ["WECHAT_API_BASE"] = FAKE_WECHAT.base_url
os.environ["SMS_API_BASE"] = FAKE_SMS.base_url

__all__ = ["SMS_API_KEY", "sms_gateway", "wechat"]


@pytest.fixture
def wechat(resources, io_loop) -> FakeWeChatState:
    """The fake WeChat's state, reset for this test, and the shared access_token cleared
    from this run's Redis namespace so every test starts from an empty token cache."""
    FAKE_WECHAT.state.reset()

    async def clear() -> None:
        cache = resources.cache
        await cache.redis.delete(cache.key("wechat", "access_token"),
                                 cache.key("wechat", "access_token", "lock"))
    io_loop.run_sync(clear)
    return FAKE_WECHAT.state


@pytest.fixture
def sms_gateway() -> FakeSmsState:
    """The fake SMS gateway's state, reset for this test."""
    FAKE_SMS.state.reset()
    return FAKE_SMS.state
