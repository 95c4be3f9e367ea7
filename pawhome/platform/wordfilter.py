"""Sensitive-word filter: one Aho-Corasick automaton over pawhome/data/sensitive_words.txt.

Text and words are normalised the same way (NFKC full/half-width folding, case folding,
traditional characters folded to simplified through a small character map, and removal of
everything that is not a letter or digit), so "赌 博", "赌😀博", "賭博" and "ＦＵＣＫ" all match.
Hard words are refused; soft words are allowed where a moderator reviews them later.
The automaton and the character map are built once per process, on first use.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ahocorasick

from pawhome.platform.errors import SensitiveContent, field_error

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
WORDS_FILE = DATA_DIR / "sensitive_words.txt"
# Not OpenCC: a character map of common traditional characters is enough to fold the listed
# words, costs one str.translate, and needs no dictionary package.
CHARACTER_MAP_FILE = DATA_DIR / "traditional_to_simplified.txt"


@dataclass(frozen=True)
class Verdict:
    hard: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hard and not self.soft


@lru_cache(maxsize=1)
def _simplified_table() -> dict[int, str]:
    """str.translate table from CHARACTER_MAP_FILE (pairs "賭赌" separated by spaces)."""
    table: dict[int, str] = {}
    for raw in CHARACTER_MAP_FILE.read_text(encoding="utf-8").splitlines():
        for pair in raw.split("#", 1)[0].split():
            if len(pair) != 2:
                raise ValueError(f"{CHARACTER_MAP_FILE}: {pair!r} is not a character pair")
            if pair[0] != pair[1]:
                table[ord(pair[0])] = pair[1]
    return table


def normalise(text: str) -> str:
    """Fold width, case and traditional characters, then keep only letters and digits (drops
    spaces, punctuation, emoji, zero-width joiners and variation selectors inserted between
    characters)."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_simplified_table())
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")


def load_words(path: Path = WORDS_FILE) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {"hard": [], "soft": []}
    current: str | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().lower()
            if current not in sections:
                raise ValueError(f"{path}: unknown section [{current}]")
            continue
        if current is None:
            raise ValueError(f"{path}: word {line!r} before any section")
        sections[current].append(line)
    return sections


@lru_cache(maxsize=1)
def _automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for severity, words in load_words().items():
        for word in words:
            key = normalise(word)
            if not key:
                continue
            # A word listed as both keeps the harsher severity.
            existing = automaton.get(key, None)
            if existing is None or (existing[0] == "soft" and severity == "hard"):
                automaton.add_word(key, (severity, word))
    automaton.make_automaton()
    return automaton


def check(text: str) -> Verdict:
    """Which listed words the text contains, by severity (each word reported once)."""
    key = normalise(text)
    automaton = _automaton()
    if not key or len(automaton) == 0:
        return Verdict()
    hard: list[str] = []
    soft: list[str] = []
    for _end, (severity, word) in automaton.iter(key):
        bucket = hard if severity == "hard" else soft
        if word not in bucket:
            bucket.append(word)
    return Verdict(hard=hard, soft=soft)


def screen_text(text: str, field: str) -> list[str]:
    """The synchronous screen of user text (posts, comments, profiles): refuse text with a
    hard-listed word (422 naming the field and the word); return the soft-listed words it
    contains (the content is then held for review by moderation)."""
    verdict = check(text or "")
    if verdict.hard:
        reason = f"contains a prohibited word: {verdict.hard[0]}"
        raise SensitiveContent(f"{field} {reason}", errors=[field_error(field, reason)])
    return verdict.soft
