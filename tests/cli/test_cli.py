"""The commands through typer's CliRunner (in-process), with the stand-in model."""

import json

import pytest
from typer.testing import CliRunner

from clapper_cli.app import app
from clapper_cli.errors import EXIT_CODES, exit_code_for
from clapper_cli.main import main
from clapper_core import errors as E
from clapper_core.records import validate
from tests.cli.conftest import corrupt_video
from tests.cli.fake_model import answer_for

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_version_is_a_plain_flag():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("clapper ")
    assert "<bool>" not in run("--help").stdout


@pytest.mark.parametrize("command", ["ask", "caption", "config", "doctor", "completions"])
def test_every_command_has_examples(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples" in result.stdout and "clapper " + command in result.stdout


def test_ask_prints_answers_only_on_stdout_a_blank_line_apart(fake_model, tiny_video):
    result = run("ask", str(tiny_video), "what happens?", "and then?", "why?")
    assert result.exit_code == 0, result.stderr
    answers = result.stdout.split("\n\n")
    assert [a.strip().split("asked: ")[1] for a in answers] == ["what happens?", "and then?", "why?"]
    assert result.stdout.startswith("Saw ") and result.stdout.endswith("asked: why?\n")
    assert "demo model" in result.stderr and "visual tokens" in result.stderr
    one = run("ask", str(tiny_video), "what happens?")
    assert one.stdout.startswith("Saw ") and one.stdout.endswith("asked: what happens?\n")
    assert "\n\n" not in one.stdout


def test_ask_json_is_one_object_per_question(fake_model, tiny_video):
    result = run("ask", str(tiny_video), "what happens?", "and then?", "--json", "--fps", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("{") for line in lines)
    obj = json.loads(lines[0])
    assert validate(obj) == [] and obj["answer"] == answer_for("what happens?", obj["frames"])
    assert obj["task"] == "ask" and obj["question"] == "what happens?"
    assert json.loads(lines[1])["question"] == "and then?"


def test_quiet_silences_stderr(fake_model, tiny_video):
    result = run("ask", str(tiny_video), "q", "--quiet")
    assert result.exit_code == 0 and result.stderr == "" and result.stdout.strip()


def test_chat_reads_follow_ups(fake_model, tiny_video):
    result = runner.invoke(app, ["ask", str(tiny_video), "first?", "--chat"], input="second?\n\n")
    assert result.exit_code == 0
    assert [line.split("asked: ")[1] for line in result.stdout.splitlines()] == ["first?", "second?"]


def test_caption_json_lines_and_failures_continue(fake_model, clip_tree, tmp_path):
    bad = corrupt_video(tmp_path / "broken.mp4")
    out = tmp_path / "out.jsonl"
    result = run("caption", str(bad), str(clip_tree), "--json", "-o", str(out), "--prompt", "Name the shapes.")
    assert result.exit_code == 1
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objs) == 5 and all(validate(o) == [] for o in objs)
    assert objs[0]["error_type"] == "NotAVideoError" and all(o["answer"] for o in objs[1:])
    assert out.read_text().splitlines() == result.stdout.splitlines()
    assert "4 captioned, 1 failed, 0 skipped" in result.stderr and "failed: " in result.stderr


def test_caption_rerun_over_recorded_failures_exits_1_and_says_how_to_retry(fake_model, clip_tree, tmp_path):
    bad = corrupt_video(tmp_path / "broken.mp4")
    out = tmp_path / "out.jsonl"
    assert run("caption", str(clip_tree), str(bad), "-o", str(out)).exit_code == 1
    again = run("caption", str(clip_tree), str(bad), "-o", str(out))
    assert again.exit_code == 1 and again.stdout == ""
    assert "0 captioned, 0 failed, 5 skipped" in again.stderr
    assert f"1 video failed in an earlier run (recorded in {out}); add --retry-failed" in again.stderr
    done = run("caption", str(clip_tree), "-o", str(out))  # only the videos that worked: nothing to say
    assert done.exit_code == 0 and "earlier run" not in done.stderr
    retried = run("caption", str(clip_tree), str(bad), "-o", str(out), "--retry-failed")
    assert retried.exit_code == 1 and "0 captioned, 1 failed, 4 skipped" in retried.stderr
    assert "earlier run" not in retried.stderr and len(out.read_text().splitlines()) == 5


def test_caption_walk_takes_images(fake_model, tmp_path):
    from tests.fixtures.video import make_image, make_video

    (tmp_path / "media").mkdir()
    make_image(tmp_path / "media" / "b.png")
    make_image(tmp_path / "media" / "a.jpg")
    make_video(tmp_path / "media" / "c.mp4", frames=10, fps=10)
    result = run("caption", str(tmp_path / "media"))
    assert result.exit_code == 0, result.stderr
    assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == [
        str(tmp_path / "media" / name) for name in ("a.jpg", "b.png", "c.mp4")]


def test_caption_text_output(fake_model, clip_tree):
    result = run("caption", str(clip_tree))
    assert result.exit_code == 0
    assert [line.split(": ", 1)[0] for line in result.stdout.splitlines()] == [
        str(clip_tree / "a.mp4"), str(clip_tree / "b.mp4"), str(clip_tree / "sub/c.mkv"),
        str(clip_tree / "sub/deeper/d.mp4")]
    single = run("caption", str(clip_tree / "a.mp4"))
    assert single.stdout.startswith("Saw ")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["ask"], 2, "Usage"),
        (["ask", "{video}", "q", "--quant", "8bit"], 2, "8bit"),
        (["ask", "{video}", "q", "--fps", "0"], 2, "Error: --fps = 0.0 is invalid"),
        (["ask", "{video}"], 2, "Error: no question given"),
        (["ask", "{tmp}/missing.mp4", "q"], 1, "Error: {tmp}/missing.mp4: no such file"),
        (["ask", "{video}", "q", "--model", "missing-model"], 1, "Error: no model at missing-model"),
        (["caption", "{tmp}/nothing"], 1, "Error: {tmp}/nothing: no such file or directory"),
        (["config", "set", "fps", "fast"], 2, "Error: fps = 'fast' is invalid"),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_exit_codes_for_each_error_kind(fake_model, tiny_video, tmp_path, capsys, args, code, message):
    args = [a.format(video=tiny_video, tmp=tmp_path) for a in args]
    assert main(args) == code
    captured = capsys.readouterr()
    assert message.format(tmp=tmp_path) in captured.out + captured.err
    if message.startswith("Error:"):  # one line on stderr, nothing on stdout
        assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_debug_shows_the_traceback(fake_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLAPPER_DEBUG", "1")
    assert main(["ask", str(tmp_path / "missing.mp4"), "q"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_error_table():
    assert exit_code_for(E.ConfigError("x")) == 2
    assert exit_code_for(E.CorruptVideoError("x")) == 1 and exit_code_for(E.QuantizationError("x")) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130 and exit_code_for(PermissionError()) == 1
    assert all(code in (1, 2, 130) for _, code in EXIT_CODES)


def test_config_commands(isolated_config):
    assert run("config", "set", "max-frames", "48").exit_code == 0
    assert run("config", "get", "max_frames").stdout == "48\n"
    shown = json.loads(run("config", "show", "--json").stdout)
    assert shown["max_frames"] == {"value": 48, "source": f"file {isolated_config}"}
    assert run("config", "path").stdout.strip() == str(isolated_config)
    assert run("config", "unset", "max-frames").exit_code == 0
    assert "max_frames" in run("config", "show").stdout


def test_doctor_never_crashes():
    result = run("doctor", "--json", "--model", "owner/not-cached-model")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert {"python", "torch", "pyav", "decoders", "bitsandbytes", "flash-attn", "model"} <= set(checks)
    assert "would download owner/not-cached-model" in checks["model"]["detail"]


@pytest.mark.parametrize("value", ["0", "-4", "many"])
def test_a_batch_size_below_one_is_a_one_line_usage_error(fake_model, tiny_video, capsys, value):
    from clapper_cli.main import main

    for command in (["caption", str(tiny_video)], ["eval", str(tiny_video)]):
        code = main([*command, "--batch-size", value])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("Error: --batch-size") and "Traceback" not in err
