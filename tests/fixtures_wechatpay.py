"""Fixtures for the fake WeChat Pay server (tests/fakes/wechatpay.py).

Importing this module (conftest lists it in `pytest_plugins`) starts the fake and points
PAYMENT_PROVIDER=wechat and the WECHATPAY_* settings at it before any settings are read, so
gateway apps, workers and worker subprocesses started later all pay through it. Settings
start in certificate mode (no WeChat Pay public key); tests of the public-key mode build
their own settings and set `wechatpay.sign_with = "public_key"`.
"""
from __future__ import annotations

import os

import pytest

from tests.fakes.wechatpay import (
    APIV3_KEY,
    MCHID,
    MERCHANT_KEY_PEM,
    MERCHANT_SERIAL,
    FakeWeChatPay,
    FakeWeChatPayState,
)

FAKE_WECHATPAY = FakeWeChatPay()
os.environ.update(
    PAYMENT_PROVIDER="wechat",
    WECHATPAY_API_BASE=FAKE_WECHATPAY.base_url,
    WECHATPAY_MCHID=MCHID,
    WECHATPAY_PRIVATE_KEY=MERCHANT_KEY_PEM,
    WECHATPAY_CERT_SERIAL=MERCHANT_SERIAL,
    WECHATPAY_APIV3_KEY=APIV3_KEY,
)

__all__ = ["wechatpay"]


@pytest.fixture
def wechatpay() -> FakeWeChatPayState:
    """The fake WeChat Pay's state, reset for this test."""
    FAKE_WECHATPAY.state.reset()
    return FAKE_WECHATPAY.state
