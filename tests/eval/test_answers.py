"""Prompt format and answer extraction on outputs shaped like real models' answers."""

from __future__ import annotations

import pytest

from clapper_core.eval.answers import extract_choice, format_prompt, strip_letter

OPTIONS = ["dunking a basketball", "dribbling a basketball", "passing a basketball", "shooting a basketball"]

CASES = [
    ("B", 1),
    ("b", 1),
    ("C.", 2),
    ("(B)", 1),
    ("[D]", 3),
    ("**C**", 2),
    ("B. dribbling a basketball", 1),
    ("(A) dunking a basketball", 0),
    ("D) shooting a basketball", 3),
    ("Answer: B", 1),
    ("Answer: (C)", 2),
    ("answer: d", 3),
    ("The answer is B.", 1),
    ("The correct answer is (A) dunking a basketball.", 0),
    ("The best answer is: C", 2),
    ("Best option: D", 3),
    ("I think the answer is A because the man jumps to the rim.", 0),
    ("Option C", 2),
    ("The man is passing a basketball.", 2),
    ("dribbling a basketball", 1),
    ("Dribbling a basketball.", 1),
    ("The video shows a man, and the answer would be D", 3),
    ("A man is shooting a basketball at the hoop.", 3),
    ("C - passing a basketball", 2),
    ("  B\n", 1),
    ("B</s>", 1),
    ("It is D.", 3),
    # unparseable: nothing, refusals, several letters, a letter out of range, unrelated text
    ("", None),
    ("I cannot tell from the video.", None),
    ("A man is playing a game.", None),
    ("Either B or C.", None),
    ("E", None),
    ("The answer is E.", None),
    ("a basketball", None),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_extract_choice(text, expected):
    assert extract_choice(text, OPTIONS) == expected


def test_none_is_unparseable():
    assert extract_choice(None, OPTIONS) is None


def test_longest_option_text_wins():
    options = ["red ball", "big red ball", "blue cube"]
    assert extract_choice("a big red ball rolls left", options) == 1
    assert extract_choice("the red ball", options) == 0


def test_prompt_letters_options_and_asks_for_a_letter():
    prompt = format_prompt("What is the man doing?", OPTIONS[:3])
    assert prompt.splitlines() == [
        "What is the man doing?",
        "A. dunking a basketball",
        "B. dribbling a basketball",
        "C. passing a basketball",
        "Answer with the option's letter from the given choices directly.",
    ]


def test_strip_letter():
    assert strip_letter("A. dunking") == "dunking"
    assert strip_letter("(B) x y") == "x y"
    assert strip_letter("no letter here") == "no letter here"
    assert strip_letter("I. first", index=0) == "I. first"
    assert strip_letter("I. ninth", index=8) == "ninth"
