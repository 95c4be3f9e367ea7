"""The sensitive-word filter: normalisation defeats the usual disguises."""
from __future__ import annotations

import pytest

from pawhome.platform import wordfilter


@pytest.mark.parametrize("text", [
    "赌博", "来赌博吧", "赌 博", "赌-博", "赌😀博", "赌\u200d博", "赌\u3000博",
    "ＦＵＣＫ", "FuCk", "f.u.c.k", "f u c k", "ｆｕｃｋ",
])
def test_hard_words_are_found_through_disguises(text):
    assert wordfilter.check(text).hard


@pytest.mark.parametrize("text", ["加微信", "加 微 信 聊", "加ＱＱ", "刷单"])
def test_soft_words_are_reported_as_soft(text):
    verdict = wordfilter.check(text)
    assert verdict.soft and not verdict.hard


@pytest.mark.parametrize("text", ["", "   ", "旺财🐶", "我家的猫很可爱", "Lucky Dog", "🐱🐱"])
def test_clean_text_is_clean(text):
    assert wordfilter.check(text).clean


def test_each_word_is_reported_once_with_its_listed_spelling():
    verdict = wordfilter.check("赌博 赌 博 ＦＵＣＫ")
    assert verdict.hard == ["赌博", "fuck"]


def test_word_list_has_both_sections():
    words = wordfilter.load_words()
    assert words["hard"] and words["soft"]
    assert all(wordfilter.normalise(w) for w in words["hard"] + words["soft"])
