"""The care rules (pawhome/virtualpet/care.py), pure: statuses decay linearly from what was
stored, per personality, to a floor of 0, mood faster once the pet is hungry or dirty; the
experience curve; what each interaction does and refuses; cooldowns; skills by training."""
from __future__ import annotations

import datetime as dt

import pytest

from pawhome.platform.errors import (
    ItemRequired,
    ItemUnsuitable,
    PetAlreadyClean,
    PetAlreadyFull,
    PetTooHungry,
)
from pawhome.virtualpet import care
from settings import Settings

RULES = care.rules_from(Settings())
T0 = dt.datetime(2027, 3, 14, 8, 0)
FRESH = {"mood": 80_000, "fullness": 80_000, "cleanliness": 80_000, "affection": 20_000}


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_default_rates_per_hour_for_a_plain_personality():
    assert care.rates(RULES, "unknown") == {"mood": 3000, "fullness": 4000,
                                             "cleanliness": 2000, "affection": 500}


def test_statuses_fall_linearly_with_time_and_never_before_status_at():
    assert care.current(FRESH, T0, at(0), "plain", RULES) == FRESH
    assert care.current(FRESH, T0, at(-5), "plain", RULES) == FRESH  # a clock behind
    assert care.current(FRESH, T0, at(10), "plain", RULES) == {
        "mood": 50_000, "fullness": 40_000, "cleanliness": 60_000, "affection": 15_000}
    # One second: 4000/3600 thousandths of fullness, rounded down.
    assert care.current(FRESH, T0, T0 + dt.timedelta(seconds=1), "plain", RULES)["fullness"] \
        == 79_999


def test_statuses_floor_at_zero_however_long_the_pet_waits():
    later = care.current(FRESH, T0, at(24 * 365), "plain", RULES)
    assert later == {"mood": 0, "fullness": 0, "cleanliness": 0, "affection": 0}


def test_mood_falls_twice_as_fast_once_the_pet_is_hungry():
    # Fullness 80 falls under 30 after 12.5 h; mood 3/h until then, 6/h after.
    stored = dict(FRESH, mood=100_000)
    assert care.current(stored, T0, at(12), "plain", RULES)["mood"] == 64_000
    mood_14 = care.current(stored, T0, at(14.5), "plain", RULES)["mood"]
    assert mood_14 == pytest.approx(100_000 - 3000 * 12.5 - 6000 * 2, abs=2)


def test_mood_falls_fast_from_the_start_when_dirty_already():
    stored = dict(FRESH, cleanliness=10_000)
    assert care.current(stored, T0, at(2), "plain", RULES)["mood"] == 80_000 - 12_000


def test_personality_scales_the_rates():
    greedy = care.current(FRESH, T0, at(10), "greedy", RULES)
    assert greedy["fullness"] == 80_000 - 56_000  # 4/h * 1.4
    tidy = care.current(FRESH, T0, at(10), "tidy", RULES)
    assert tidy["cleanliness"] == 80_000 - 12_000  # 2/h * 0.6
    clingy = care.current(FRESH, T0, at(10), "clingy", RULES)
    assert clingy["affection"] == 20_000 - 8_000


def test_decaying_in_steps_matches_decaying_at_once_within_rounding():
    whole = care.current(FRESH, T0, at(9), "lively", RULES)
    part = care.current(FRESH, T0, at(4.3), "lively", RULES)
    stepped = care.current(part, at(4.3), at(9), "lively", RULES)
    for status in care.STATUSES:
        assert abs(whole[status] - stepped[status]) <= 2, status


def test_the_hungry_moment_is_when_fullness_falls_under_the_threshold():
    # 80 -> under 20 at 4/h: 15 h (and a hair).
    when = care.hungry_at(FRESH, T0, "plain", RULES)
    assert when is not None and at(15) <= when <= at(15) + dt.timedelta(seconds=1)
    assert care.current(FRESH, T0, when, "plain", RULES)["fullness"] < 20_000
    assert care.current(FRESH, T0, when - dt.timedelta(seconds=2), "plain",
                        RULES)["fullness"] >= 20_000
    assert care.hungry_at(dict(FRESH, fullness=5_000), T0, "plain", RULES) == T0


def test_initial_statuses_by_personality():
    assert care.initial_statuses("calm") == FRESH
    assert care.initial_statuses("clingy")["affection"] == 30_000


def test_the_level_curve():
    assert [care.exp_to_advance(n) for n in (1, 2, 3, 4)] == [100, 283, 520, 800]
    assert care.exp_for_level(1) == 0 and care.exp_for_level(2) == 100
    assert care.exp_for_level(3) == 383
    assert care.level_for(0) == 1 and care.level_for(99) == 1 and care.level_for(100) == 2
    assert care.level_for(382) == 2 and care.level_for(383) == 3
    assert care.level_for(10**12) == care.MAX_LEVEL
    assert care.progress(150) == {"level": 2, "exp": 150, "level_exp": 100,
                                  "next_level_exp": 383, "exp_to_next": 233,
                                  "max_level": care.MAX_LEVEL}
    assert care.progress(10**12)["next_level_exp"] is None


def test_effects_are_clamped_to_the_range():
    fed = care.apply("feeding", dict(FRESH, fullness=90_000))
    assert fed["fullness"] == 100_000 and fed["affection"] == 22_000
    played = care.apply("playing", dict(FRESH, cleanliness=2_000))
    assert played["cleanliness"] == 0 and played["mood"] == 95_000


def test_refusals_and_items():
    care.check("feeding", FRESH, "virtual_pet_food")
    with pytest.raises(PetAlreadyFull):
        care.check("feeding", dict(FRESH, fullness=95_000), "virtual_pet_food")
    with pytest.raises(PetAlreadyClean):
        care.check("cleaning", dict(FRESH, cleanliness=99_000), None)
    with pytest.raises(PetTooHungry):
        care.check("training", dict(FRESH, fullness=9_999), None)
    with pytest.raises(ItemRequired):
        care.check("feeding", FRESH, None)
    with pytest.raises(ItemUnsuitable):
        care.check("playing", FRESH, "virtual_pet_food")
    with pytest.raises(ItemUnsuitable):
        care.check("petting", FRESH, "virtual_pet_toy")


def test_cooldowns_count_from_the_last_use():
    uses = {"feeding": T0.isoformat()}
    assert care.cooldown_left("feeding", uses, at(0.25), RULES) == 1800 - 900
    assert care.cooldown_left("feeding", uses, at(0.5), RULES) == 0
    assert care.cooldown_left("petting", uses, at(0), RULES) == 0
    assert care.cooldowns_left(uses, at(0), RULES)["feeding"] == 1800


def test_a_skill_comes_with_every_fifth_training_once_the_level_allows():
    assert care.skill_unlocked(4, 1, []) is None
    assert care.skill_unlocked(5, 1, []) == "sit"
    assert care.skill_unlocked(10, 1, ["sit"]) is None  # shake_hands needs level 2
    assert care.skill_unlocked(11, 2, ["sit"]) == "shake_hands"
    everything = [name for name, _ in care.SKILLS]
    assert care.skill_unlocked(1000, 100, everything) is None
