"""Sensitive-word filter: one Aho-Corasick automaton over pawhome/data/sensitive_words.txt.

Text and words are normalised the same way (NFKC full/half-width folding, case folding, and
removal of everything that is not a letter or digit), so "赌 博", "赌😀博" and "ＦＵＣＫ" all
match. Hard words are refused; soft words are allowed where a moderator reviews them later.
The automaton is built once per process, on first use.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ahocorasick

WORDS_FILE = Path(__file__).resolve().parent / "data" / "sensitive_words.txt"


@dataclass(frozen=True)
class Verdict:
    hard: list[str] = field(default_factory=list)
    soft: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hard and not self.soft


def normalise(text: str) -> str:
    """Fold width and case, then keep only letters and digits (drops spaces, punctuation,
    emoji, zero-width joiners and variation selectors inserted between characters)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
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
