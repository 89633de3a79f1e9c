"""Lettered multiple-choice prompts, and reading the chosen letter back out of free text.

Models answer multiple-choice questions in many shapes: "B", "(B)", "B. a red ball",
"Answer: B", "The answer is B.", "**C**", or only the option's text. `extract_choice`
reads all of these; anything it cannot pin to exactly one option returns None, which
evaluation counts as wrong (and records).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase
INSTRUCTION = "Answer with the option's letter from the given choices directly."

# "A. text", "(B) text", "C) text", "D: text" at the start of an option string.
_LETTER_PREFIX = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]\.:](?:\s+|$)")


def letter(index: int) -> str:
    assert 0 <= index < len(LETTERS), index
    return LETTERS[index]


def strip_letter(option: str, index: int | None = None) -> str:
    """"A. a red ball" -> "a red ball"; an option without a letter prefix is returned as is.

    With `index`, only the letter that belongs at that position is stripped, so an option
    that happens to start with "I." keeps its text.
    """
    m = _LETTER_PREFIX.match(option)
    if m and (index is None or m.group(1) == letter(index)):
        return option[m.end():].strip()
    return option.strip()


def format_prompt(question: str, options: Sequence[str]) -> str:
    """The question, its options lettered A, B, C..., and the instruction to answer with a letter."""
    lines = [question.strip()]
    lines += [f"{letter(i)}. {text}" for i, text in enumerate(options)]
    lines.append(INSTRUCTION)
    return "\n".join(lines)


# --- reading the answer ----------------------------------------------------------------------

# "answer is B", "Answer: (C)", "correct option is D", "best choice: A", "option B"
_EXPLICIT = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|:|=|-)?\s*(?:option|choice|letter)?\s*[:\-]?\s*"
    r"[\(\[\*\"']*([A-Z])(?![A-Za-z])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^[\(\[\*\"'\s]*([A-Z])(?:[\)\]\.:,]|\s+-|\s*$)")
_BRACKETED = re.compile(r"[\(\[]([A-Z])[\)\]]")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])")


def _normalize(text: str) -> str:
    text = text.lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


# words that may follow a letter answer: "the answer is A because ..."
_CONNECTIVES = {"because", "since", "as", "which", "given", "for", "and", "from", "in", "the", "option", "choice"}


def _looks_like_article(text: str, end: int) -> bool:
    """After "A" or a lowercase letter: is it the start of a phrase ("a red ball") rather than an answer?"""
    m = re.match(r"\s+([a-z]+)", text[end:])
    return bool(m) and m.group(1) not in _CONNECTIVES


def _explicit_letter(text: str, n: int) -> int | None:
    for m in _EXPLICIT.finditer(text):
        raw = m.group(1)
        bracketed = text[m.start(1) - 1:m.start(1)] in ("(", "[")
        if not bracketed and (raw.islower() or raw in "AI") and _looks_like_article(text, m.end(1)):
            continue
        i = LETTERS.index(raw.upper())
        if i < n:
            return i
    return None


def _by_text(text: str, options: Sequence[str]) -> int | None:
    said = _normalize(text)
    if not said:
        return None
    normalized = [_normalize(o) for o in options]
    exact = [i for i, o in enumerate(normalized) if o and o == said]
    if len(exact) == 1:
        return exact[0]
    found = [i for i, o in enumerate(normalized) if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", said)]
    # "red ball" and "big red ball" both appear when the model says "big red ball": keep the longest
    found = [i for i in found if not any(j != i and normalized[i] in normalized[j] for j in found)]
    return found[0] if len(found) == 1 else None


def _standalone_letter(text: str, n: int) -> int | None:
    seen = set()
    for m in _STANDALONE.finditer(text):
        ch = m.group(1)
        if ch in "AI" and _looks_like_article(text, m.end()):
            continue  # "A man ...", "I think ..."
        if LETTERS.index(ch) < n:
            seen.add(ch)
    return LETTERS.index(seen.pop()) if len(seen) == 1 else None


def extract_choice(text: str | None, options: Sequence[str]) -> int | None:
    """Index of the option a free-text answer picks, or None when it cannot be told.

    Tried in order: the whole answer is one letter; an explicit "answer is X"; a leading
    "X." / "(X)"; a single bracketed letter; the text of exactly one option; a single
    stand-alone capital letter among the options' letters.
    """
    if not text:
        return None
    n = len(options)
    clean = text.replace("**", "").strip()
    bare = clean.strip(" \t\n.()[]{}\"'`:*")
    if len(bare) == 1 and bare.upper() in LETTERS[:n]:
        return LETTERS.index(bare.upper())
    for attempt in (
        lambda: _explicit_letter(clean, n),
        lambda: _leading_letter(clean, n),
        lambda: _single(_BRACKETED.findall(clean), n),
        lambda: _by_text(clean, options),
        lambda: _standalone_letter(clean, n),
    ):
        found = attempt()
        if found is not None:
            return found
    return None


def _leading_letter(text: str, n: int) -> int | None:
    m = _LEADING.match(text)
    if m and LETTERS.index(m.group(1)) < n:
        return LETTERS.index(m.group(1))
    return None


def _single(letters: list[str], n: int) -> int | None:
    distinct = {ch for ch in letters if LETTERS.index(ch) < n}
    return LETTERS.index(distinct.pop()) if len(distinct) == 1 else None
