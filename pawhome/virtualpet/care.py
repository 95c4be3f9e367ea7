"""The care rules, pure: no database, no clock, no cache — every input is an argument, so the
formulas are tested directly (tests/test_virtualpet_care.py) and pets.py, interactions.py and
hunger.py only gather the inputs. docs/virtual-pet.md ("Care").

Statuses are thousandths (0-100,000 for 0-100, models/virtual_pets.py). Decay is lazy and
closed-form: from the values stored at `status_at`, each status falls linearly at its
per-hour rate (settings, scaled by the pet's personality) to a floor of 0; mood falls
`neglect_factor` times faster from the moment the pet is hungry or dirty (fullness or
cleanliness under `neglect_below`). The experience curve, the interaction effects, the
refusals, cooldowns and skills are here too.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.virtual_pets import INTERACTION_TYPES, STATUS_MAX, STATUS_SCALE
from pawhome.platform.errors import (
    ItemRequired,
    ItemUnsuitable,
    PetAlreadyClean,
    PetAlreadyFull,
    PetTooHungry,
    field_error,
)
from settings import Settings

STATUSES = ("mood", "fullness", "cleanliness", "affection")
Statuses = dict[str, int]  # status -> thousandths

# Personality -> status -> how much faster (>1) or slower (<1) that status decays. The
# generator picks one of these; any other personality decays at the plain rates.
PERSONALITY_SCALES: dict[str, dict[str, float]] = {
    "lively": {"mood": 1.25, "fullness": 1.25},  # burns energy, wants play
    "calm": {"mood": 0.8, "fullness": 0.9},
    "greedy": {"fullness": 1.4},  # always hungry
    "tidy": {"cleanliness": 0.6},
    "clingy": {"affection": 1.6, "mood": 1.1},  # misses you quickly
    "independent": {"affection": 0.5},
    "curious": {"mood": 1.1, "cleanliness": 1.2},  # gets into everything
}
PERSONALITIES = tuple(PERSONALITY_SCALES)

INITIAL = {"mood": 80, "fullness": 80, "cleanliness": 80, "affection": 20}
INITIAL_AFFECTION = {"clingy": 30, "independent": 10}

# -- experience and levels ---------------------------------------------------------------
MAX_LEVEL = 100


def exp_to_advance(level: int) -> int:
    """Experience that takes a pet from `level` to the next: round(100 * level^1.5)."""
    return round(100 * math.pow(level, 1.5))


# _LEVEL_EXP[n - 1] = total experience at which level n starts (level 1 at 0).
_LEVEL_EXP: list[int] = [0]
for _level in range(1, MAX_LEVEL):
    _LEVEL_EXP.append(_LEVEL_EXP[-1] + exp_to_advance(_level))


def exp_for_level(level: int) -> int:
    """Total experience at which `level` starts (1 <= level <= MAX_LEVEL)."""
    return _LEVEL_EXP[max(1, min(level, MAX_LEVEL)) - 1]


def level_for(exp: int) -> int:
    """The level a total experience reaches (capped at MAX_LEVEL)."""
    return bisect.bisect_right(_LEVEL_EXP, max(0, exp))


def progress(exp: int) -> dict[str, Any]:
    """Level, the experience where it started, where the next starts (None at the top) and
    how much is still needed."""
    level = level_for(exp)
    nxt = exp_for_level(level + 1) if level < MAX_LEVEL else None
    return {"level": level, "exp": exp, "level_exp": exp_for_level(level),
            "next_level_exp": nxt, "exp_to_next": (nxt - exp) if nxt is not None else 0,
            "max_level": MAX_LEVEL}


# -- rules from the settings -------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    per_hour: Mapping[str, int]  # status -> thousandths lost per hour (before personality)
    neglect_factor: float  # mood falls this many times faster while hungry or dirty
    neglect_below: int  # thousandths: fullness / cleanliness under this is hungry / dirty
    hungry_below: int  # thousandths: the hungry reminder's threshold
    cooldowns: Mapping[str, int]  # interaction type -> seconds


def rules_from(settings: Settings) -> Rules:
    return Rules(
        per_hour={"mood": round(settings.vpet_mood_per_hour * STATUS_SCALE),
                  "fullness": round(settings.vpet_fullness_per_hour * STATUS_SCALE),
                  "cleanliness": round(settings.vpet_cleanliness_per_hour * STATUS_SCALE),
                  "affection": round(settings.vpet_affection_per_hour * STATUS_SCALE)},
        neglect_factor=settings.vpet_mood_neglect_factor,
        neglect_below=settings.vpet_neglect_below * STATUS_SCALE,
        hungry_below=settings.vpet_hungry_threshold * STATUS_SCALE,
        cooldowns={kind: int(getattr(settings, f"vpet_cooldown_{kind}_seconds"))
                   for kind in INTERACTION_TYPES})


def rates(rules: Rules, personality: str) -> dict[str, int]:
    """Thousandths per hour each status loses for a pet of this personality."""
    scales = PERSONALITY_SCALES.get(personality, {})
    return {s: round(rules.per_hour[s] * scales.get(s, 1.0)) for s in STATUSES}


def initial_statuses(personality: str) -> Statuses:
    """An adopted pet's statuses: fed, clean and content, not yet attached (thousandths)."""
    values = dict(INITIAL, affection=INITIAL_AFFECTION.get(personality, INITIAL["affection"]))
    return {s: values[s] * STATUS_SCALE for s in STATUSES}


# -- decay -------------------------------------------------------------------------------


def _fall(value: int, per_hour: int, seconds: int) -> int:
    return max(0, value - per_hour * seconds // 3600)


def seconds_until_below(value: int, per_hour: int, limit: int) -> int | None:
    """Seconds until a status falling at `per_hour` is under `limit` (0: it is already;
    None: never, it does not fall)."""
    if value < limit:
        return 0
    if per_hour <= 0:
        return None
    return math.ceil((value - limit + 1) * 3600 / per_hour)


def current(stored: Mapping[str, int], status_at: dt.datetime, now: dt.datetime,
            personality: str, rules: Rules) -> Statuses:
    """The statuses at `now` from those stored at `status_at` (a `now` before it: the stored
    ones). Fullness, cleanliness and affection fall linearly to 0; mood falls at its rate
    until the pet is hungry or dirty, then `neglect_factor` times faster."""
    seconds = max(0, int((now - status_at).total_seconds()))
    rate = rates(rules, personality)
    out = {s: _fall(int(stored[s]), rate[s], seconds)
           for s in ("fullness", "cleanliness", "affection")}
    untils = [u for u in (seconds_until_below(int(stored["fullness"]), rate["fullness"],
                                              rules.neglect_below),
                          seconds_until_below(int(stored["cleanliness"]), rate["cleanliness"],
                                              rules.neglect_below)) if u is not None]
    calm = min([seconds, *untils])
    fast_rate = round(rate["mood"] * rules.neglect_factor)
    lost = (rate["mood"] * calm + fast_rate * (seconds - calm)) // 3600
    out["mood"] = max(0, int(stored["mood"]) - lost)
    return {s: out[s] for s in STATUSES}


def hungry_at(stored: Mapping[str, int], status_at: dt.datetime, personality: str,
              rules: Rules) -> dt.datetime | None:
    """When fullness falls under the hungry threshold (`status_at` itself if it is under
    already; None if it never falls)."""
    seconds = seconds_until_below(int(stored["fullness"]), rates(rules, personality)["fullness"],
                                  rules.hungry_below)
    return None if seconds is None else status_at + dt.timedelta(seconds=seconds)


# -- interactions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    gains: Mapping[str, int]  # status -> points (not thousandths); negative: it costs
    exp: int
    item_kind: str | None = None  # the inventory kind the interaction needs
    consumes_item: bool = False  # used up (food) or only needed (a toy)


EFFECTS: dict[str, Effect] = {
    "feeding": Effect({"fullness": 30, "affection": 2, "mood": 2}, exp=5,
                      item_kind="virtual_pet_food", consumes_item=True),
    "petting": Effect({"mood": 10, "affection": 3}, exp=2),
    "playing": Effect({"mood": 15, "affection": 2, "fullness": -5, "cleanliness": -5}, exp=8,
                      item_kind="virtual_pet_toy"),
    "cleaning": Effect({"cleanliness": 40, "mood": 3}, exp=3),
    "training": Effect({"affection": 1, "mood": -2, "fullness": -3}, exp=15),
}
assert set(EFFECTS) == set(INTERACTION_TYPES)

FULL_AT = 95 * STATUS_SCALE  # feeding refused from here (and cleaning for cleanliness)
TOO_HUNGRY_UNDER = 10 * STATUS_SCALE  # playing and training refused under this fullness


def check(kind: str, statuses: Mapping[str, int], item_kind: str | None) -> None:
    """Refuse an interaction the pet cannot take now, or with the wrong item: 400 when the
    pet is full, clean or too hungry; 422 when the needed item is missing or of another
    kind, or an item is given where none is used. `item_kind` is the kind of the inventory
    item given (None: no item)."""
    effect = EFFECTS[kind]
    if effect.item_kind is None and item_kind is not None:
        raise ItemUnsuitable(errors=[field_error("item_id", f"{kind} uses no item")])
    if effect.item_kind is not None:
        if item_kind is None:
            raise ItemRequired(errors=[field_error("item_id",
                                                   f"{kind} needs a {effect.item_kind}")])
        if item_kind != effect.item_kind:
            raise ItemUnsuitable(errors=[field_error(
                "item_id", f"{kind} needs a {effect.item_kind}, not a {item_kind}")])
    if kind == "feeding" and statuses["fullness"] >= FULL_AT:
        raise PetAlreadyFull()
    if kind == "cleaning" and statuses["cleanliness"] >= FULL_AT:
        raise PetAlreadyClean()
    if kind in ("playing", "training") and statuses["fullness"] < TOO_HUNGRY_UNDER:
        raise PetTooHungry()


def apply(kind: str, statuses: Mapping[str, int]) -> Statuses:
    """The statuses after the interaction, each kept within 0-100."""
    gains = EFFECTS[kind].gains
    return {s: min(STATUS_MAX, max(0, int(statuses[s]) + gains.get(s, 0) * STATUS_SCALE))
            for s in STATUSES}


def cooldown_left(kind: str, last_uses: Mapping[str, str], now: dt.datetime,
                  rules: Rules) -> int:
    """Seconds before `kind` may be done again (0: now). `last_uses` maps a type to the
    ISO time it was last done (the pet's `cooldowns`)."""
    last = last_uses.get(kind)
    seconds = rules.cooldowns.get(kind, 0)
    if not last or seconds <= 0:
        return 0
    ready = dt.datetime.fromisoformat(last) + dt.timedelta(seconds=seconds)
    return max(0, math.ceil((ready - now).total_seconds()))


def cooldowns_left(last_uses: Mapping[str, str], now: dt.datetime,
                   rules: Rules) -> dict[str, int]:
    return {kind: cooldown_left(kind, last_uses, now, rules) for kind in INTERACTION_TYPES}


# -- skills ------------------------------------------------------------------------------

# Learned in this order by training: the next one comes with every TRAININGS_PER_SKILL
# trainings, once the pet has reached its level.
SKILLS: tuple[tuple[str, int], ...] = (
    ("sit", 1), ("shake_hands", 2), ("lie_down", 3), ("roll_over", 5), ("fetch", 7),
    ("play_dead", 10), ("dance", 15), ("high_five", 20))
TRAININGS_PER_SKILL = 5


def skill_unlocked(trainings: int, level: int, skills: list[str]) -> str | None:
    """The skill a training unlocks: `trainings` counts this one, `level` is after it,
    `skills` what the pet knows. None when nothing new is learned."""
    known = set(skills)
    upcoming = [(name, at) for name, at in SKILLS if name not in known]
    if not upcoming:
        return None
    name, at_level = upcoming[0]
    if trainings >= TRAININGS_PER_SKILL * (len(known) + 1) and level >= at_level:
        return name
    return None
