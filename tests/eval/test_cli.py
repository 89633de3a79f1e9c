"""`clapper eval` on the command line: exit codes, stdout vs stderr, JSON, resume, usage errors."""

from __future__ import annotations

import json

import pytest

from clapper_cli.main import main
from tests.eval.fake import FakeSession, install
from tests.eval.test_evaluate import bench_path  # noqa: F401  (module fixture)


@pytest.fixture
def cli(monkeypatch, tmp_path):
    install(monkeypatch)
    monkeypatch.setattr(FakeSession, "asked", 0)
    monkeypatch.setenv("CLAPPER_CONFIG", str(tmp_path / "none.toml"))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "CLAPPER_TEST_STOP_AFTER", "CLAPPER_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_json_report_on_stdout_table_on_stderr(cli, bench_path, capsys):  # noqa: F811
    code = main(["eval", str(bench_path), "-m", "fake-model", "--max-visual-tokens", "1500", "--json"])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["frames"] == 24 and report["total"] == 7 and report["correct"] == 4
    assert report["missing_videos"] == 1 and report["by_task"]["order"] == {"total": 3, "correct": 2,
                                                                              "accuracy": 0.6667}
    assert "overall" in err and "57.1%" in err and "not found (gone.mp4)" in err
    results = cli / "clapper-eval" / "bench-fake-model-1500tok" / "results.jsonl"
    assert len(results.read_text().splitlines()) == 7


def test_plain_run_prints_nothing_on_stdout_and_resumes(cli, bench_path, capsys):  # noqa: F811
    args = ["eval", str(bench_path), "-m", "fake-model", "--frames", "8", "-o", "out"]
    assert main(args + ["--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "overall" in err and "resuming" not in err
    assert FakeSession.asked == 3
    assert main(args) == 0
    assert FakeSession.asked == 6  # 3 more: q3, q4, q6 (q5's video is missing)
    _, err = capsys.readouterr()
    assert "resuming from out/results.jsonl: 3 of 7 questions already answered (--overwrite starts afresh)" in err
    assert json.loads((cli / "out" / "report.json").read_text())["correct"] == 4


@pytest.mark.parametrize("extra, message", [
    (["--max-visual-tokens", "100"], "single frame"),
    (["--frames", "0"], "--frames"),
    (["--limit", "0"], "--limit"),
])
def test_usage_errors_exit_2_with_one_line(cli, bench_path, capsys, extra, message):  # noqa: F811
    assert main(["eval", str(bench_path), "-m", "fake-model", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and len(err.strip().splitlines()) == 1


def test_unknown_format_is_a_usage_error(cli, bench_path, capsys):  # noqa: F811
    assert main(["eval", str(bench_path), "-m", "fake-model", "--format", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_forced_format_must_match_the_file(cli, bench_path, capsys):  # noqa: F811
    assert main(["eval", str(bench_path), "-m", "fake-model", "--format", "tempcompass"]) == 1
    assert "TempCompass" in capsys.readouterr().err


def test_missing_benchmark_exits_1(cli, capsys):
    assert main(["eval", "nope.json", "-m", "fake-model"]) == 1
    assert "does not exist" in capsys.readouterr().err
