"""Local moderation: weighted context patterns scored into the OpenAI moderation response shape.

A phrase is flagged for what it asks or intends, not for the words it contains: "kill" flags with
a person as its object and an intent or a how-to around it ("I want to kill my boss"), never with
a process, a container or a signal. Coverage, limits and measured precision/recall:
docs/moderation.md. Deterministic, no model, well under a millisecond per question.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from docqa.errors import DocqaError
from docqa.providers.moderation_rules import (  # noqa: F401  (CATEGORIES, PARENTS are re-exported)
    CATEGORIES,
    CONTEXT_DAMPING,
    PARENTS,
    QUOTED_DAMPING,
    RULES,
    SI,
    SX,
    THRESHOLD,
    Rule,
)
from docqa.providers.moderation_rules import CONTEXT as _CONTEXT
from docqa.providers.moderation_rules import REPORT_FRAME as _REPORT_FRAME

# ---- normalisation -------------------------------------------------------------------------------

_CONTRACTIONS: tuple[tuple[str, str], ...] = (
    (r"\b(i|you|we|they|he|she|it)'ll\b", r"\1 will"), (r"\bi'm\b", "i am"), (r"\bim\b", "i am"),
    (r"\bi've\b", "i have"), (r"\bi'd\b", "i would"), (r"\b(you|we|they)'re\b", r"\1 are"),
    (r"\byoure\b", "you are"), (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"),
    (r"\b(\w+)n't\b", r"\1 not"), (r"\bcannot\b", "can not"),
    (r"\b(do|does|did|is|are|was|were|could|would|should|have|has)nt\b", r"\1 not"),
    (r"\bwont\b", "will not"), (r"\bcant\b", "can not"), (r"\bgonna\b", "going to"),
    (r"\bwanna\b", "want to"), (r"\bgotta\b", "got to"), (r"\bimma\b|\bima\b", "i am going to"),
    (r"\blet's\b", "let us"), (r"\bf[*#@]+c?k|\bfck\b|\bfuk\b", "fuck"), (r"\bsh[*]t\b", "shit"),
    (r"\bb[*]tch", "bitch"), (r"\bu r\b", "you are"), (r"\bur\s+(?=(?:a|an|so|such|the)\b)", "you are "),
)
# Digits and symbols standing in for letters ("k1ll", "$uicide"), mapped only inside words that
# start with a letter or symbol so "12yo", "-9" and version numbers keep their digits.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i"})
_LEET_WORD = r"(?<![\w./-])[a-z@$][\w@$!]*[0-9@$!][\w@$!]*[a-z][\w@$!]*"
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"))
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u300c": '"', "\u300d": '"', "\u300e": '"', "\u300f": '"', "\uff02": '"'})


def normalize(text: str) -> str:
    """Lower-cased NFKC text with straight quotes, expanded contractions and de-leeted words."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).translate(_QUOTES).lower()
    text = _engine().leet_word.sub(lambda m: m.group(0).translate(_LEET), text)
    for pattern, replacement in _engine().contractions:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class _Engine:
    rules: tuple[tuple[Rule, re.Pattern[str], re.Pattern[str] | None], ...]
    contractions: tuple[tuple[re.Pattern[str], str], ...]
    leet_word: re.Pattern[str]
    context: re.Pattern[str]
    frame: re.Pattern[str]
    first_person: re.Pattern[str]


@cache
def _engine() -> _Engine:
    """Every pattern compiled, once, on first use rather than at import."""
    return _Engine(
        rules=tuple((r, re.compile(r.pattern), re.compile(r.unless) if r.unless else None) for r in RULES),
        contractions=tuple((re.compile(p), r) for p, r in _CONTRACTIONS),
        leet_word=re.compile(_LEET_WORD),
        context=re.compile(_CONTEXT), frame=re.compile(_REPORT_FRAME),
        first_person=re.compile(r"\b(?:i|me|my|myself)\b|我"))


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of quoted passages; an apostrophe between letters is not a quote mark."""
    masked = re.sub(r"(?<=\w)'(?=\w)", "\x00", text)
    found = re.finditer(r'"([^"]+)"|(?<!\w)\'([^\']{3,})\'(?!\w)', masked)
    return [m.span(1) if m.group(1) is not None else m.span(2) for m in found]


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the quoted passages blanked out."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


@dataclass(frozen=True)
class Match:
    """One rule that fired on a text, with the weights it contributed after damping."""

    rule: str
    text: str
    scores: dict[str, float]


def explain(text: str) -> list[Match]:
    """The rules that fire on `text` and what each contributes: the reason behind a score."""
    return _matches(normalize(text))


def _matches(norm: str) -> list[Match]:
    engine = _engine()
    spans = _quoted_spans(norm)
    framed = bool(spans) and engine.frame.search(_outside(norm, spans)) is not None
    in_context = engine.context.search(norm) is not None
    matches = []
    for rule, pattern, unless in engine.rules:
        m = pattern.search(norm)
        if m is None or (unless is not None and unless.search(norm)):
            continue
        factor = 1.0
        if rule.topic and in_context:
            factor *= CONTEXT_DAMPING
        if rule.quotable and framed and any(s <= m.start() and m.end() <= e for s, e in spans):
            factor *= QUOTED_DAMPING
        matches.append(Match(rule.name, m.group(0), {k: w * factor for k, w in rule.scores.items()}))
    return matches


def score(text: str) -> dict:
    """One OpenAI-shaped moderation result for `text`."""
    norm = normalize(text)
    remaining = dict.fromkeys(CATEGORIES, 1.0)
    for match in _matches(norm):
        for category, weight in match.scores.items():
            # Independent pieces of evidence combine as a noisy-or: two weak signals make a strong one.
            remaining[category] *= 1.0 - weight
    scores = {c: 1.0 - remaining[c] for c in CATEGORIES}
    # Asking for a method in the first person ("how deep do I need to cut") is intent as well.
    if scores[SX] >= THRESHOLD and _engine().first_person.search(norm):
        scores[SI] = max(scores[SI], scores[SX] * 0.8)
    for child, parent in PARENTS.items():
        scores[parent] = max(scores[parent], scores[child])
    scores = {c: round(min(max(v, 0.0), 1.0), 4) for c, v in scores.items()}
    categories = {c: scores[c] >= THRESHOLD for c in CATEGORIES}
    return {"flagged": any(categories.values()), "categories": categories, "category_scores": scores}


class LocalModerator:
    """Moderator protocol over the rules above: no model, no network, deterministic."""

    name = "local/rules-v1"

    def __init__(self) -> None:
        _engine()  # pay the one-off regex compilation here, not on the first request

    def moderate(self, texts: Sequence[str]) -> list[dict]:
        """One {"flagged", "categories", "category_scores"} result per text, in order."""
        if isinstance(texts, str):
            raise DocqaError("Moderation takes a list of texts, not one string: pass [text].",
                             code="bad_request")
        results = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DocqaError(f"Moderation input {i} is {type(text).__name__}, not text: send strings only.",
                                 code="bad_request")
            results.append(score(text))
        return results
