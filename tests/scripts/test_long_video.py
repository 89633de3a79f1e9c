"""scripts/long_video.py: when answers right within 4 s, run-ons counted (and wrong), figures by segment count,
targets beside them; and the prompt that tells the model each segment's start time."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from clapper_core.synthetic import answer_right, seconds_in
from scripts.long_video import Answer, LongScores, ask_video, heldout, main, score, table, targets


@pytest.mark.parametrize("text, seconds", [("at 13s", 13.0), ("After 12.5 seconds.", 12.5), ("[8.0s]", 8.0),
                                           ("at the start", None), ("", None)])
def test_seconds_in_reads_the_first_number(text, seconds):
    assert seconds_in(text) == seconds


@pytest.mark.parametrize("answer, right", [("at 12s", True), ("at 16s", True), ("at 8s", True), ("At 15.5 s.", True),
                                           ("at 16.5s", False), ("at 7s", False), ("at 0s", False),
                                           ("when the circle appears", False)])
def test_when_is_right_within_four_seconds_of_the_truth(answer, right):
    assert answer_right("when", answer, "at 12s") is right


def test_other_families_are_right_on_the_same_words():
    assert answer_right("direction", "Left.", "left")
    assert not answer_right("count", "12", "at 12s")  # only when reads a time
    assert not answer_right("net change", "it turned red", "it turned blue")


@dataclass
class _Stats:
    stopped: bool


class _Session:
    """A VideoSession stand-in: scripted (answer, stopped) per question, in order."""

    def __init__(self, replies):
        self.replies, self.last_stats, self.asked = list(replies), None, []

    def ask(self, question, gen=None):
        self.asked.append(question)
        answer, stopped = self.replies.pop(0)
        self.last_stats = _Stats(stopped)
        return answer


def _row(family, truth, segments=2, video="v0"):
    return {"video": video, "segments": segments, "family": family, "question": f"{family}?", "answer": truth}


def test_a_run_on_is_counted_and_wrong_even_when_its_words_are_right():
    rows = [_row("when", "at 5s"), _row("when", "at 5s"), _row("colour", "red"), _row("colour", "red")]
    session = _Session([("at 6s", True), ("at 5s at 5s at 5s", False), ("red", True), ("red", False)])
    answers = ask_video(session, rows, gen=None)
    assert [a.stopped for a in answers] == [True, False, True, False]
    assert [a.right for a in answers] == [True, False, True, False]
    assert LongScores(tuple(answers)).run_ons() == (2, 4)


def _answer(segments, family, right, stopped=True, video=None):
    return Answer(video=video or f"v{segments}", segments=segments, family=family, question="?", truth="",
                  answer="", right=right, stopped=stopped)


def test_scores_split_by_segment_count_and_pool_the_long_videos():
    s = LongScores((_answer(1, "colour", True), _answer(1, "colour", True), _answer(2, "colour", True),
                    _answer(8, "colour", False), _answer(8, "when", True, stopped=False), _answer(2, "when", True)))
    assert s.accuracy("colour", [1]) == 1.0 and s.accuracy("colour", [2, 8]) == 0.5
    assert s.accuracy("shape", [1]) != s.accuracy("shape", [1])  # NaN: never asked
    assert s.run_ons([1]) == (0, 2) and s.run_ons([2, 8]) == (1, 4) and s.run_ons() == (1, 6)
    assert s.group(("colour", "shape", "count"), [2, 8]) == 0.5  # only the families asked
    lines = table(s, "model")
    assert [line.split()[0] for line in lines[3:]] == ["1", "2", "8", "2-8"]
    assert lines[-1].split()[-1] == "1/4"


def test_targets_say_which_are_met():
    one = [_answer(1, "colour", True, video=f"a{i}") for i in range(10)]
    many = [_answer(4, "colour", i < 9, video=f"b{i}") for i in range(10)]  # 90%: 10 points down
    when = [_answer(4, "when", i < 8, video=f"c{i}") for i in range(10)]  # 80%: met
    model = LongScores(tuple(one + many + when + [_answer(4, "order", True)]))
    lines = targets(model, LongScores((_answer(4, "order", False), _answer(4, "when", False))))
    said = {line.split(":")[0].strip(): _verdict(line) for line in lines[1:]}
    assert said["colour"] == "NOT MET" and said["when within 4 s"] == "met" and said["run-ons"] == "met"
    assert said["time-only families"] == "met"  # (80% + 100%) / 2 against 0%
    assert said["shape"] == "-"  # not asked: no verdict
    assert _verdict(targets(model)[-3]) == "-"  # no keyframe-only model, no verdict


def _verdict(line: str) -> str:
    return "NOT MET" if line.endswith("NOT MET") else line.split()[-1]


def test_each_video_is_opened_once_and_its_questions_asked_in_order(tmp_path):
    qa = tmp_path / "qa.jsonl"
    rows = [_row("colour", "red", video="videos/a.mp4"), _row("shape", "square", video="videos/a.mp4"),
            _row("colour", "blue", video="videos/b.mp4")]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opened = []

    def open_session(path):
        opened.append(path.name)
        return _Session([("red", True), ("circle", True)] if path.name == "a.mp4" else [("blue", True)])

    scores = score(open_session, [qa], gen=None)
    assert opened == ["a.mp4", "b.mp4"]
    assert [a.right for a in scores.answers] == [True, False, True]


def test_heldout_videos_are_written_once_with_their_segment_count(tmp_path):
    qa = heldout(tmp_path, 3, 2)
    rows = [json.loads(line) for line in qa.read_text().splitlines()]
    assert {r["segments"] for r in rows} == {3} and len({r["video"] for r in rows}) == 2
    stamp = qa.stat().st_mtime_ns
    assert heldout(tmp_path, 3, 2) == qa and qa.stat().st_mtime_ns == stamp


def test_a_tiny_model_run_counts_every_run_on_the_session_reports(tiny_model_dir, tmp_path, capsys):
    """A random model hardly ever stops within 2 tokens: each answer's `stopped` is the session's own."""
    assert main(["--model", str(tiny_model_dir), "--videos", "1", "--segments", "1", "2", "--max-new-tokens", "2",
                 "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    answers = [json.loads(line) for line in next(tmp_path.glob("answers-*.jsonl")).read_text().splitlines()]
    ran = sum(not a["stopped"] for a in answers)
    assert ran > 0 and f"run-ons: {ran} of {len(answers)} answers" in out
    assert {a["segments"] for a in answers} == {1, 2}
    assert all(not a["right"] for a in answers if not a["stopped"])


def test_the_demo_model_reads_each_segments_start_time_before_it(tmp_path):
    """The prompt docs/long_video.md describes: "[0.0s]<video tokens>[4.0s]<video tokens>..." at 1 fps."""
    from clapper_core.model import LoadConfig, load_model
    from clapper_core.video import SamplingConfig, load_clip

    qa = heldout(tmp_path, 3, 1)
    video = qa.parent / json.loads(qa.read_text().splitlines()[0])["video"]
    loaded = load_model(LoadConfig(model="clapper-demo", device="cpu"))
    assert loaded.model.config.segment_timestamps
    inputs = loaded.processor.prepare_video(load_clip(video, SamplingConfig()))
    text = loaded.processor.tokenizer.decode(list(inputs.prefix_ids))
    assert inputs.segment_start_times == (0.0, 4.0, 8.0)
    stamps = [text.index(s) for s in ("[0.0s]", "[4.0s]", "[8.0s]")]
    assert stamps == sorted(stamps) and "<video>" in text[stamps[0]:stamps[1]]


# --- the recipe's long-world option -------------------------------------------------------------


class _Stop(Exception):
    """Raised in place of writing the data: the arguments are all the test looks at."""


def test_the_recipe_trains_on_the_long_world_with_segments(monkeypatch, tmp_path):
    from clapper_core.synthetic import WorldConfig
    from scripts import demo_model as demo

    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(demo, "generate_dataset", record)
    for argv, world in (([], None), (["--segments", "1", "8"], WorldConfig(segments=(1, 8)))):
        with pytest.raises(_Stop):
            demo.main(["--work", str(tmp_path), *argv])
        assert seen[-1].get("config") == world  # the one-segment recipe's options are what they were


@pytest.mark.parametrize("segments, says", [(("1", "9"), "at most 8 segments"), (("3", "2"), "fewest")])
def test_the_recipe_refuses_segments_it_cannot_train_on_before_writing_anything(segments, says, tmp_path, capsys):
    from scripts.demo_model import main as recipe_main

    with pytest.raises(SystemExit) as exit_:
        recipe_main(["--work", str(tmp_path / "w"), "--segments", *segments])
    assert exit_.value.code == 2 and says in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_the_long_recipe_fits_its_tokenizer_to_when_questions():
    from clapper_core.synthetic import WorldConfig
    from scripts.demo_model import world_texts

    texts = world_texts(200, config=WorldConfig(segments=(1, 8)))
    assert any(t.startswith("When does") for t in texts) and not any("When does" in t for t in world_texts(200))
