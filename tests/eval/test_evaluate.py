"""The evaluation run: scoring, missing videos, tokens used, resume, two processes, the real tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clapper_core.errors import ConfigError
from clapper_core.eval import EvalOptions, evaluate, load_benchmark
from clapper_core.records import validate
from tests.eval.fake import FakeSession, fake_settings, install
from tests.fixtures.video import make_video

REPO = Path(__file__).resolve().parents[2]

QUESTIONS = [
    # video, say (the fake model's answer), answer, task
    ("a.mp4", "B", "B", "count"),
    ("a.mp4", "The_answer_is_(C).", "A", "count"),
    ("a.mp4", "green_ball", "C", "color"),
    ("b.mp4", "I_cannot_tell.", "A", "color"),
    ("b.mp4", "Answer:_A", "A", "order"),
    ("gone.mp4", "A", "A", "order"),  # missing video: counted as wrong
    ("c.mp4", "D", "D", "order"),
]


@pytest.fixture(scope="module")
def bench_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        make_video(root / name, frames=12, fps=4, size=(32, 32))
    rows = [{"id": f"q{i}", "video": v, "question": f"Which one? say:{say}", "options": ["red ball", "blue cube",
             "green ball", "yellow star"], "answer": ans, "task": task} for i, (v, say, ans, task) in
            enumerate(QUESTIONS)]
    path = root / "bench.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def fake(monkeypatch):
    install(monkeypatch)
    monkeypatch.setattr(FakeSession, "asked", 0)
    monkeypatch.delenv("CLAPPER_TEST_STOP_AFTER", raising=False)


def _stable(path: Path) -> list[dict]:
    """Records without the fields that hold wall-clock times."""
    out = []
    for line in path.read_text().splitlines():
        obj = json.loads(line)
        obj.pop("timings"), obj.pop("tokens_per_s")
        out.append(obj)
    return out


def test_scores_tasks_and_counts_missing_videos(fake, bench_path, tmp_path):
    report = evaluate(load_benchmark(bench_path), fake_settings(), EvalOptions(max_visual_tokens=6000),
                      output_dir=tmp_path / "out")
    # right: q0 (B), q2 ("green ball" = C), q4 (A), q6 (D); wrong: q1 (C vs A), q3 unparseable, q5 missing
    assert (report.total, report.correct) == (7, 4)
    assert (report.answered, report.unparseable, report.missing_videos, report.failed) == (5, 1, 1, 0)
    assert {k: (v.correct, v.total) for k, v in report.by_task.items()} == {
        "color": (1, 2), "count": (1, 2), "order": (2, 3)}
    assert report.frames == 96 and report.planned_visual_tokens == 5880
    # the videos have 12 frames: 12 were used, 3 segments of 245 tokens, and that is what is recorded
    assert report.visual_tokens == {"min": 735, "mean": 735.0, "max": 735}
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["extra"]["id"] for r in records] == [f"q{i}" for i in range(7)]
    assert all(validate(r) == [] for r in records)
    assert records[3]["extra"]["status"] == "unparseable" and records[3]["answer"] == "I cannot tell."
    assert records[5]["extra"]["status"] == "missing_video" and records[5]["error_type"] == "VideoNotFoundError"
    assert records[2]["extra"]["prediction"] == "C" and records[2]["extra"]["correct"] is True
    assert [r["extra"]["reference"] for r in records[:3]] == ["B", "A", "C"]  # the right letter, as the README names it
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["accuracy"] == round(4 / 7, 4) and saved["by_task"]["order"]["correct"] == 2


def test_frames_fix_the_count_and_budget_is_recorded(fake, bench_path, tmp_path):
    report = evaluate(load_benchmark(bench_path), fake_settings(), EvalOptions(frames=8),
                      output_dir=tmp_path / "out")
    assert report.frames == 8 and report.max_visual_tokens is None and report.planned_visual_tokens == 490
    assert report.visual_tokens["max"] == 490 and report.frames_used == {"min": 8, "mean": 8.0, "max": 8}
    report = evaluate(load_benchmark(bench_path), fake_settings(), EvalOptions(max_visual_tokens=1500),
                      output_dir=tmp_path / "budget")
    assert report.frames == 24 and report.max_visual_tokens == 1500


def test_fps_samples_at_a_rate_up_to_the_budget(fake, bench_path, tmp_path):
    """The 3-s videos at 1 fps give 3 frames (one segment) whatever the budget; at 2 fps the 6 frames
    are cut to the 4 that --frames allows. The sampling rate is part of what a run file pins."""
    bench = load_benchmark(bench_path)
    report = evaluate(bench, fake_settings(), EvalOptions(max_visual_tokens=1500, fps=1), output_dir=tmp_path / "a")
    assert report.frames == 24 and report.frames_used == {"min": 3, "mean": 3.0, "max": 3}
    assert report.visual_tokens["max"] == 245
    report = evaluate(bench, fake_settings(), EvalOptions(frames=4, fps=2), output_dir=tmp_path / "b")
    assert report.frames_used["max"] == 4
    with pytest.raises(ConfigError, match="fps"):
        evaluate(bench, fake_settings(), EvalOptions(frames=4, fps=1), output_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="--fps"):
        EvalOptions(fps=0)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_resume_after_interruption_gives_the_uninterrupted_result(fake, bench_path, tmp_path, monkeypatch,
                                                                   batch_size):
    bench = load_benchmark(bench_path)
    settings = fake_settings(batch_size=batch_size)
    evaluate(bench, settings, EvalOptions(frames=8), output_dir=tmp_path / "whole")
    FakeSession.asked = 0
    monkeypatch.setenv("CLAPPER_TEST_STOP_AFTER", "3")
    with pytest.raises(KeyboardInterrupt):
        evaluate(bench, settings, EvalOptions(frames=8), output_dir=tmp_path / "cut")
    kept = [json.loads(line) for line in (tmp_path / "cut" / "results.jsonl").read_text().splitlines()]
    answered = sum(r["extra"]["status"] != "missing_video" for r in kept)
    # one at a time, the first three are done when the fourth is interrupted; in a batch of 8 the fourth may
    # start beside them (then none is done) or after them, depending on when its video is decoded
    assert answered in ((3,) if batch_size == 1 else (0, 3))
    monkeypatch.delenv("CLAPPER_TEST_STOP_AFTER")
    FakeSession.asked = 0
    report = evaluate(bench, settings, EvalOptions(frames=8), output_dir=tmp_path / "cut")
    assert FakeSession.asked == 6 - answered  # only the rest was asked (6 questions have a video)
    assert report.correct == 4
    # the same records; a resumed file keeps what the first run finished first, as a merged parallel run does
    by_id = lambda path: sorted(_stable(path), key=lambda r: r["extra"]["id"])  # noqa: E731
    assert by_id(tmp_path / "cut" / "results.jsonl") == by_id(tmp_path / "whole" / "results.jsonl")


def test_batch_of_8_gives_the_results_of_one_at_a_time(fake, bench_path, tmp_path):
    bench = load_benchmark(bench_path)
    for n in (1, 8):
        evaluate(bench, fake_settings(batch_size=n), EvalOptions(frames=8), output_dir=tmp_path / str(n))
    assert _stable(tmp_path / "1" / "results.jsonl") == _stable(tmp_path / "8" / "results.jsonl")


def test_results_of_another_run_are_not_mixed(fake, bench_path, tmp_path):
    bench = load_benchmark(bench_path)
    evaluate(bench, fake_settings(), EvalOptions(frames=8), output_dir=tmp_path / "out")
    with pytest.raises(ConfigError, match="frames"):
        evaluate(bench, fake_settings(), EvalOptions(frames=4), output_dir=tmp_path / "out")
    report = evaluate(bench, fake_settings(), EvalOptions(frames=4, overwrite=True), output_dir=tmp_path / "out")
    assert report.frames == 4 and report.visual_tokens["max"] == 245


def test_limit_reports_only_the_selection(fake, bench_path, tmp_path):
    bench = load_benchmark(bench_path)
    evaluate(bench, fake_settings(), EvalOptions(frames=4), output_dir=tmp_path / "out")
    report = evaluate(bench.select(limit=2), fake_settings(), EvalOptions(frames=4), output_dir=tmp_path / "out")
    assert (report.total, report.correct) == (2, 1)


def test_two_processes_merge_to_the_single_process_result(fake, bench_path, tmp_path):
    evaluate(load_benchmark(bench_path), fake_settings(), EvalOptions(frames=8), output_dir=tmp_path / "one")
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   TORCHELASTIC_RUN_ID="eval-two", CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.eval.fake", str(bench_path), str(tmp_path / "two"), "--frames", "8"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["merged", "part"]
    assert _stable(tmp_path / "two" / "results.jsonl") == _stable(tmp_path / "one" / "results.jsonl")
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    for key in ("seconds", "world_size", "results", "report"):
        one.pop(key), two.pop(key)
    assert one == two
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["report.json", "results.jsonl", "run.json"]


def test_real_tiny_model(tiny_model_dir, bench_path, tmp_path):
    from clapper_core.settings import resolve

    settings = resolve({"model": str(tiny_model_dir), "device": "cpu", "max_new_tokens": 4}, env={},
                       path=Path("/nonexistent/clapper.toml"))
    bench = load_benchmark(bench_path).select(limit=2)
    report = evaluate(bench, settings, EvalOptions(max_visual_tokens=100), output_dir=tmp_path / "out")
    # tiny layout: 16 keyframe + 9 perceiver tokens per 4-frame segment -> 100 tokens buy 4 segments
    assert report.frames == 16 and report.planned_visual_tokens == 100
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(validate(r) == [] and r["error"] is None for r in records)
    assert all(r["visual_tokens"] == 75 and r["frames"] == 12 for r in records)  # 12-frame videos
    assert report.total == 2 and report.answered + report.unparseable == 2


def test_undecodable_video_is_recorded_and_counted_wrong(fake, tmp_path):
    make_video(tmp_path / "ok.mp4", frames=8, fps=4, size=(32, 32))
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video")
    rows = [{"id": f"q{i}", "video": v, "question": "Which? say:A", "options": ["x", "y"], "answer": "A"}
            for i, v in enumerate(["ok.mp4", "broken.mp4", "broken.mp4"])]
    (tmp_path / "b.json").write_text(json.dumps(rows))
    events = []
    report = evaluate(load_benchmark(tmp_path / "b.json"), fake_settings(), EvalOptions(frames=4),
                      output_dir=tmp_path / "out", on_event=events.append)
    assert (report.total, report.correct, report.failed) == (3, 1, 2)
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["extra"]["status"] for r in records] == ["answered", "failed", "failed"]
    assert records[1]["error_type"] == "NotAVideoError" and records[1]["answer"] is None
    # one failure notice for the video, not one per question
    assert sum(e.kind == "video_done" and e.record is not None and not e.record.ok for e in events) == 1
