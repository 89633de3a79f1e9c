"""Family scores and the paired comparison that scripts/temporal.py prints."""

import json
import random

import pytest

from clapper_core.synthetic.questions import (
    normalize_answer,
    order_events,
    order_objects,
)
from scripts.synth_eval import (
    FamilyScores,
    load_scores,
    mean_over_runs,
    order_by_objects,
    paired_difference,
    save_scores,
    score_synthetic,
)

FAMILIES = ("colour", "shape")


def _scores(rights: list[tuple[str, str, bool]]) -> FamilyScores:
    s = FamilyScores()
    for video, family, right in rights:
        s.add(video, family, right)
    return s


def _questions(videos: int = 60) -> list[tuple[str, str]]:
    return [(f"v{i}", family) for i in range(videos) for family in FAMILIES]


def test_add_counts_per_family_and_keeps_the_order():
    s = _scores([("a", "colour", True), ("a", "shape", False), ("b", "colour", False)])
    assert s.accuracy("colour") == 0.5 and s.accuracy("shape") == 0.0
    assert s.outcomes == [("a", "colour", True), ("a", "shape", False), ("b", "colour", False)]


def test_paired_difference_is_the_gap_in_the_family_mean():
    rng = random.Random(1)
    qs = _questions()
    a = _scores([(v, f, rng.random() < 0.5) for v, f in qs])
    b = _scores([(v, f, rng.random() < 0.5) for v, f in qs])
    d, lo, hi = paired_difference(a, b, FAMILIES, resamples=400)
    assert d == pytest.approx(b.group(FAMILIES) - a.group(FAMILIES))
    assert lo < d < hi


def test_the_same_answers_differ_by_nothing_on_every_resample():
    rng = random.Random(2)
    a = _scores([(v, f, rng.random() < 0.7) for v, f in _questions()])
    assert paired_difference(a, a, FAMILIES, resamples=200) == (0.0, 0.0, 0.0)


def test_a_model_right_wherever_the_other_is_wrong_wins_on_every_resample():
    rng = random.Random(3)
    a = _scores([(v, f, rng.random() < 0.6) for v, f in _questions()])
    b = _scores([(v, f, True) for v, f, _ in a.outcomes])
    d, lo, hi = paired_difference(a, b, FAMILIES, resamples=200)
    assert 0 < lo <= d <= hi


def test_only_the_named_families_count():
    qs = _questions(20)
    a = _scores([(v, f, f == "colour") for v, f in qs])
    b = _scores([(v, f, True) for v, f in qs])
    assert paired_difference(a, b, ("colour",), resamples=50) == (0.0, 0.0, 0.0)
    assert paired_difference(a, b, ("shape",), resamples=50) == (1.0, 1.0, 1.0)


def test_models_scored_on_other_questions_are_refused():
    a = _scores([("v0", "colour", True), ("v1", "colour", True)])
    b = _scores([("v0", "colour", True), ("v2", "colour", True)])
    with pytest.raises(ValueError, match="same questions"):
        paired_difference(a, b, FAMILIES)


def test_mean_over_runs_weighs_each_run_the_same():
    one = _scores([("v0", "colour", True), ("v0", "shape", False), ("v1", "colour", True), ("v1", "shape", False)])
    two = _scores([("v0", "colour", False), ("v0", "shape", True), ("v1", "colour", True), ("v1", "shape", True),
                   ("v2", "colour", True), ("v2", "shape", True)])
    mean = mean_over_runs([one, two])
    assert mean["colour"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert mean["shape"] == pytest.approx((0.0 + 1.0) / 2)
    assert mean["one_frame"] == pytest.approx((one.one_frame + two.one_frame) / 2)
    assert "direction" not in mean  # a family neither run was asked
    with pytest.raises(ValueError, match="no runs"):
        mean_over_runs([])


ONE = "Which happened first, the square turned blue or the square turned red?"
TWO = "Which happened first, the circle appeared or the square disappeared?"


def test_order_objects_counts_the_objects_an_order_question_names():
    assert order_objects(ONE) == 1
    assert order_objects(TWO) == 2
    assert order_objects("What colour is the square?") is None


def test_order_by_objects_splits_the_order_family_as_the_questions_were_asked(tmp_path):
    rows = [("v0", "order", ONE), ("v1", "colour", "What colour is the circle?"), ("v1", "order", TWO),
            ("v0", "order", TWO)]  # v0's second question comes last in the file, but is asked with v0's first
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"video": v, "family": f, "question": q, "answer": "x"}) + "\n"
                          for v, f, q in rows))
    asked = _scores([("v0", "order", True), ("v0", "order", False), ("v1", "colour", True), ("v1", "order", True)])
    assert order_by_objects(asked, qa) == {1: (1, 1), 2: (1, 2)}
    with pytest.raises(ValueError, match="not made on"):
        order_by_objects(_scores([("v1", "order", True)]), qa)


def test_order_by_objects_counts_the_likelier_options_with_chosen(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"video": "v0", "family": f, "question": q, "answer": "x"}) + "\n"
                          for f, q in (("order", ONE), ("colour", "What colour is the circle?"), ("order", TWO),
                                       ("order", TWO))))
    asked = _scores([("v0", "order", False), ("v0", "colour", True), ("v0", "order", False), ("v0", "order", True)])
    asked.chosen = {0: True, 2: True}  # the last order question was not chosen on: left out
    assert order_by_objects(asked, qa, chosen=True) == {1: (1, 1), 2: (1, 1)}
    assert order_by_objects(asked, qa) == {1: (0, 1), 2: (1, 2)}


def test_score_synthetic_chooses_on_exactly_the_order_questions(tiny_loaded, tmp_path):
    """With `choose`, each order question also gets the likelier of its two options (as `option_logprobs`
    ranks them on a fresh session), recorded at that question's place; other questions get no choice."""
    from clapper_core.generation import VideoSession
    from clapper_core.synthetic import generate_dataset
    from clapper_core.video import SamplingConfig, load_clip

    generate_dataset(tmp_path, num_videos=3, seed=5, prefix="eval", all_orders=True)
    qa = tmp_path / "qa.jsonl"
    rows = [json.loads(line) for line in qa.read_text().splitlines()]
    scores = score_synthetic(tiny_loaded, qa, choose=True)
    order_rows = [i for i, (_, family, _) in enumerate(scores.outcomes) if family == "order"]
    assert order_rows and sorted(scores.chosen) == order_rows
    asked = [row for video in dict.fromkeys(r["video"] for r in rows) for row in rows if row["video"] == video]
    sampling = SamplingConfig(segment_size=tiny_loaded.model.config.segment_size)
    for i in order_rows:
        row = asked[i]
        options = list(order_events(row["question"]))
        logprobs = VideoSession(tiny_loaded, load_clip(tmp_path / row["video"], sampling)).option_logprobs(
            row["question"], options)
        likelier = options[logprobs.index(max(logprobs))]
        assert scores.chosen[i] == (normalize_answer(likelier) == normalize_answer(row["answer"]))
    assert score_synthetic(tiny_loaded, qa).chosen == {}  # without `choose`, nothing is chosen


def test_saved_scores_come_back_only_under_the_same_key(tmp_path):
    scores = _scores([("v0", "colour", True), ("v0", "order", False), ("v1", "colour", False)])
    scores.chosen = {1: True}
    key = {"model": "/m", "model_mtime_ns": 1, "qa": "/q", "qa_mtime_ns": 10}
    save_scores(scores, tmp_path / "answers.json", key)
    back = load_scores(tmp_path / "answers.json", key)
    assert back.outcomes == scores.outcomes and back.chosen == {1: True}
    assert back.accuracy("colour") == 0.5
    assert load_scores(tmp_path / "answers.json", {**key, "model_mtime_ns": 2}) is None  # retrained since
    assert load_scores(tmp_path / "missing.json", key) is None
    (tmp_path / "broken.json").write_text("{")
    assert load_scores(tmp_path / "broken.json", key) is None
