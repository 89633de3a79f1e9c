"""Benchmark readers: the official layouts, the generic one, video lookup and missing videos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clapper_core.errors import DataError
from clapper_core.eval.benchmarks import load_benchmark


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")
    return path


VIDEOMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "When demonstrating the Germany modern Christmas tree is "
     "initially decorated with apples, candles and berries, which kind of the decoration has the largest number?",
     "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
     "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-2",
     "task_type": "Information Synopsis", "question": "What is the genre of this video?",
     "options": ["A. It is a news report.", "B. It is a documentary.", "C. It is a vlog.", "D. It is a cartoon."],
     "answer": "B"},
    {"video_id": "002", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=zzzzzzzzzzz", "videoID": "zzzzzzzzzzz", "question_id": "002-1",
     "task_type": "Object Recognition", "question": "What is held up?",
     "options": ["A. A cup.", "B. A book.", "C. A pen.", "D. A phone."], "answer": "D"},
]


def test_videomme_parquet_with_videos_under_data(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(VIDEOMME_ROWS), root / "videomme" / "test-00000-of-00001.parquet")
    _touch(root / "data" / "fFjv93ACGo8.mp4")
    bench = load_benchmark(root / "videomme" / "test-00000-of-00001.parquet", video_root=root)
    assert bench.format == "videomme" and bench.name == "videomme"
    first = bench.questions[0]
    assert first.id == "001-1" and first.task == "Counting Problem" and first.answer == 2
    assert first.options == ("Apples.", "Candles.", "Berries.", "The three kinds are of the same number.")
    assert first.video_path == root / "data" / "fFjv93ACGo8.mp4"
    assert first.meta["duration"] == "short" and first.meta["domain"] == "Knowledge"
    assert bench.missing_videos == ["zzzzzzzzzzz.mp4"]
    assert len(bench.questions) == 3  # the missing video's question stays in the denominator


def test_videomme_nested_json(tmp_path):
    nested = [{"video_id": "001", "duration": "short", "domain": "Knowledge", "videoID": "fFjv93ACGo8",
               "questions": [{k: r[k] for k in ("question_id", "task_type", "question", "options", "answer")}
                             for r in VIDEOMME_ROWS[:2]]}]
    path = tmp_path / "videomme.json"
    path.write_text(json.dumps(nested))
    _touch(tmp_path / "fFjv93ACGo8.mp4")
    bench = load_benchmark(path)
    assert [q.id for q in bench.questions] == ["001-1", "001-2"]
    assert all(q.video_path is not None for q in bench.questions)


def test_mlvu_folder_of_task_files(tmp_path):
    root = tmp_path / "MLVU"
    (root / "json").mkdir(parents=True)
    plot = [{"video": "movie101_66.mp4", "duration": 246.0, "question": "What color is the main male character "
             "in the video?", "candidates": ["Yellow", "Red", "Green", "Blue"], "answer": "Yellow",
             "question_type": "plotQA"}]
    count = [{"video": "count_1.mp4", "duration": 300, "question": "Throughout this video, how many times "
              "does the action 'jumping' occur?", "candidates": ["2", "3", "5", "1"], "answer": "3",
              "question_type": "count"}]
    summary = [{"video": "sum_1.mp4", "duration": 500, "question": "Please summarize this video.",
                "answer": "A long story", "question_type": "summary"}]
    (root / "json" / "1_plotQA.json").write_text(json.dumps(plot))
    (root / "json" / "4_count.json").write_text(json.dumps(count))
    (root / "json" / "9_summary.json").write_text(json.dumps(summary))
    _touch(root / "video" / "1_plotQA" / "movie101_66.mp4")
    bench = load_benchmark(root / "json")
    assert bench.format == "mlvu"
    assert [(q.id, q.task, q.answer) for q in bench.questions] == [("1_plotQA/0", "plotQA", 0),
                                                                  ("4_count/0", "count", 1)]
    assert bench.questions[0].video_path == root / "video" / "1_plotQA" / "movie101_66.mp4"
    assert bench.missing_videos == ["count_1.mp4"]


def test_tempcompass_multi_choice(tmp_path):
    data = {"1034419625": {"action": [{"question": "What is the man doing in the video?\nA. dunking a basketball"
                                                   "\nB. dribbling a basketball\nC. passing a basketball",
                                       "answer": "A. dunking a basketball"}],
                           "direction": [{"question": "What is the direction of the man?\nA. moving towards the "
                                                      "camera\nB. moving from left to right",
                                          "answer": "B. moving from left to right"}]},
            "1034419625_reverse": {"direction": [{"question": "Which way?\nA. left\nB. right", "answer": "B. right"}]}}
    path = tmp_path / "questions" / "multi-choice.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    _touch(tmp_path / "videos" / "1034419625.mp4")
    bench = load_benchmark(path, video_root=tmp_path)
    assert bench.format == "tempcompass"
    q = bench.questions[0]
    assert q.id == "1034419625/action/0" and q.task == "action" and q.answer == 0
    assert q.question == "What is the man doing in the video?"
    assert q.options == ("dunking a basketball", "dribbling a basketball", "passing a basketball")
    assert q.video_path == tmp_path / "videos" / "1034419625.mp4"
    assert [x.answer for x in bench.questions] == [0, 1, 1]
    assert bench.missing_videos == ["1034419625_reverse.mp4"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_generic_layouts_and_answer_forms(tmp_path, suffix):
    rows = [
        {"video": "a.mp4", "question": "q1", "options": ["x", "y", "z"], "answer": "B", "task": "t1"},
        {"video": "a.mp4", "question": "q2", "options": ["A. x", "B. y"], "answer": "x"},
        {"video": "b.mp4", "question": "q3", "options": {"A": "x", "B": "y"}, "answer": 1, "id": "custom"},
    ]
    path = tmp_path / f"bench{suffix}"
    text = json.dumps(rows) if suffix == ".json" else "\n".join(map(json.dumps, rows))
    path.write_text(text)
    _touch(tmp_path / "a.mp4")
    bench = load_benchmark(path)
    assert bench.format == "generic"
    assert [(q.id, q.answer, q.task) for q in bench.questions] == [("0", 1, "t1"), ("1", 0, ""), ("custom", 1, "")]
    assert bench.questions[1].options == ("x", "y")
    assert bench.missing_videos == ["b.mp4"]


def test_shuffle_keeps_videos_together_and_is_seeded(tmp_path):
    rows = [{"video": f"v{i // 2}.mp4", "question": f"q{i}", "options": ["x", "y"], "answer": "A"} for i in range(20)]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(rows))
    bench = load_benchmark(path)
    a = bench.select(shuffle=True, seed=3, limit=7)
    b = bench.select(shuffle=True, seed=3, limit=7)
    assert a == b and len(a.questions) == 7
    assert [q.id for q in a.questions] != [q.id for q in bench.questions[:7]]
    videos = [q.video for q in a.questions]
    assert all(videos[i] == videos[i + 1] for i in range(0, 6, 2))
    assert bench.select(limit=3).questions == bench.questions[:3]


@pytest.mark.parametrize("rows, message", [
    ([{"video": "a.mp4", "question": "q", "options": ["x", "y"]}], "missing field"),
    ([{"video": "a.mp4", "question": "q", "options": ["x", "y"], "answer": "Q"}], "neither a letter"),
    ([{"video": "a.mp4", "question": "q", "options": ["x"], "answer": "A"}], "at least 2 options"),
    ([{"video": "a.mp4", "question": "q", "options": ["x", "y"], "answer": 5}], "outside"),
    ([{"video": "a.mp4", "question": "q", "options": ["x", "y"], "answer": "A", "id": "1"},
      {"video": "a.mp4", "question": "q", "options": ["x", "y"], "answer": "A", "id": "1"}], "twice"),
    ([], "no questions"),
])
def test_bad_annotations_raise_data_error(tmp_path, rows, message):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=message):
        load_benchmark(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_benchmark(bad)
    broken = tmp_path / "bad.parquet"
    broken.write_bytes(b"PAR1 nonsense")
    with pytest.raises(DataError, match="Parquet"):
        load_benchmark(broken)
