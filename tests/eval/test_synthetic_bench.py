"""A synthetic world written as a Video-MME benchmark reads back through the Video-MME reader."""

from __future__ import annotations

import json

import pytest

from clapper_core.eval import load_benchmark
from clapper_core.eval.synthetic_bench import main, options_for


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from clapper_core.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, num_videos=3, seed=0)
    return out


def test_round_trip_through_the_videomme_reader(synth_dir, tmp_path, capsys):
    assert main([str(synth_dir), str(tmp_path / "mme")]) == 0
    parquet = capsys.readouterr().out.strip()
    assert parquet.endswith("videomme/test-00000-of-00001.parquet")
    bench = load_benchmark(parquet, video_root=tmp_path / "mme")
    qa = [json.loads(line) for line in (synth_dir / "qa.jsonl").read_text().splitlines()]
    assert bench.format == "videomme" and len(bench.questions) == len(qa)
    assert bench.missing_videos == []
    for q, row in zip(bench.questions, qa):
        assert q.task == row["family"] and q.question == row["question"]
        assert q.options[q.answer] == row["answer"]
        assert len(set(q.options)) == len(q.options) >= 2
        assert q.video_path == tmp_path / "mme" / "data" / f"{row['id']}.mp4"


def test_options_are_seeded_and_vary_the_answer_position():
    a = options_for("synth00001-1", "colour", "What colour is the square?", "red")
    assert a == options_for("synth00001-1", "colour", "What colour is the square?", "red")
    positions = {options_for(f"q{i}", "direction", "Which way does the circle move?", "left")[1] for i in range(40)}
    assert positions == {0, 1, 2, 3}
    options, answer = options_for("q", "order", "Which happened first, the square disappeared or the circle "
                                  "turned blue?", "the square disappeared")
    assert sorted(options) == ["the circle turned blue", "the square disappeared"]
    assert options[answer] == "the square disappeared"


def test_missing_world_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), str(tmp_path / "out")]) == 1
    assert "generate a world first" in capsys.readouterr().err
