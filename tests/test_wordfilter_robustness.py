"""The word filter sees through width, case, traditional characters and inserted noise."""
from __future__ import annotations

import pytest

from pawhome.platform import wordfilter


@pytest.mark.parametrize("text", [
    "傻逼", "傻*逼", "傻🐶逼", "傻 🐶 * 逼", "傻\u200b逼", "傻.逼.", "你个傻_逼",
    "賭博", "網賭", "來賭 博吧", "辦假證", "虐貓", "代開發票",
    "ＭｏｔｈｅｒＦｕｃｋｅｒ", "mOtHeRfUcKeR", "Ｆ·Ｕ·Ｃ·Ｋ", "f🐶u🐶c🐶k",
])
def test_hard_words_are_found_through_width_case_traditional_and_noise(text):
    assert wordfilter.check(text).hard, text


@pytest.mark.parametrize("text", ["加ＱＱ", "加ｑｑ", "加 Q Q", "微信號", "刷單", "貸款", "代購"])
def test_soft_words_are_found_in_full_width_and_traditional_forms(text):
    verdict = wordfilter.check(text)
    assert verdict.soft and not verdict.hard, text


@pytest.mark.parametrize("text", ["ＡＢＣ", "abc", "我家貓咪很可愛", "狗狗 🐶 好乖", "傻傻的小狗",
                                  "博物馆", "f u n"])
def test_ordinary_text_in_any_form_is_clean(text):
    assert wordfilter.check(text).clean, text


def test_full_width_and_half_width_normalise_alike():
    assert wordfilter.normalise("ＡＢＣ１２３") == wordfilter.normalise("abc123") == "abc123"


def test_traditional_characters_fold_to_simplified():
    assert wordfilter.normalise("網路賭博") == "网路赌博"


def test_character_map_has_only_pairs_and_no_chains():
    table = wordfilter._simplified_table()
    assert len(table) > 300
    # A simplified character never maps again (one pass of str.translate is enough).
    assert not [chr(k) for k, v in table.items() if ord(v) in table]


def test_every_listed_word_is_already_in_its_normal_form_after_folding():
    words = wordfilter.load_words()
    for word in words["hard"] + words["soft"]:
        key = wordfilter.normalise(word)
        assert key and wordfilter.normalise(key) == key
