"""The real `clapper` process: streaming order, stream separation, kill and resume, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clapper_core.records import validate

REPO = Path(__file__).resolve().parents[2]


def fake_clapper(*args: str, delay: float = 0.0, stall_after: int | None = None, **kw) -> subprocess.Popen:
    """The real CLI on the fake model; `stall_after=N`: every answer after the N-th stalls, so a test that signals the
    process after N results always catches it mid-run, however loaded the machine."""
    env = {**os.environ, "CLAPPER_TEST_TOKEN_DELAY": str(delay), "PYTHONUNBUFFERED": "1"}
    if stall_after is not None:
        env["CLAPPER_TEST_STALL_AFTER"] = str(stall_after)
    # Ctrl-C as a user's terminal delivers it: a shell's background job (a CI script under nohup, say) starts with
    # SIGINT ignored, and a Python started that way never raises KeyboardInterrupt
    return subprocess.Popen([sys.executable, "-m", "tests.cli.fake_cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def test_answer_streams_in_order_before_the_process_ends(tiny_video):
    proc = fake_clapper("ask", str(tiny_video), "what happens next?", delay=0.15)
    first = proc.stdout.read(3)  # arrives while the rest is still being generated
    assert proc.poll() is None
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert (first + rest).startswith("Saw ") and (first + rest).rstrip().endswith("asked: what happens next?")
    assert "Saw" not in err and "visual tokens" in err  # timings on stderr, answer on stdout


def test_caption_json_stdout_is_pure_jsonl(clip_tree):
    proc = fake_clapper("caption", str(clip_tree), "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 4 and all(validate(o) == [] for o in objs)
    assert "4 captioned, 0 failed" in err


def _wait_for_lines(path: Path, n: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


@pytest.mark.parametrize("batch", ["1", "8"])
def test_killed_caption_run_resumes_without_duplicates(clip_tree, tmp_path, batch):
    out = tmp_path / "captions.jsonl"
    proc = fake_clapper("caption", str(clip_tree), "-o", str(out), "--batch-size", batch, stall_after=1)
    _wait_for_lines(out, 1)
    proc.kill()
    proc.communicate(timeout=30)
    partial = out.read_text().splitlines()
    assert len(partial) == 1  # the second answer stalls until the kill
    again = fake_clapper("caption", str(clip_tree), "-o", str(out), "--json", "--batch-size", batch)
    stdout, err = again.communicate(timeout=60)
    assert again.returncode == 0
    assert f"{len(partial)} skipped" in err and len(stdout.splitlines()) == 4 - len(partial)
    videos = [json.loads(line)["video"] for line in out.read_text().splitlines()]
    assert sorted(videos) == sorted(set(videos)) and len(videos) == 4


def test_ctrl_c_exits_130_keeps_what_is_done_says_so_and_the_same_command_resumes(clip_tree, tmp_path):
    out = tmp_path / "captions.jsonl"
    command = ("caption", str(clip_tree), "-o", str(out))
    proc = fake_clapper(*command, stall_after=2)
    _wait_for_lines(out, 2)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Interrupted." in err and "Traceback" not in err
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(validate(json.loads(line)) == [] for line in lines)
    assert len(stdout.splitlines()) == 2  # every finished caption was printed too
    assert f"2 of 4 videos are saved in {out}; run the same command again to resume." in err
    again = fake_clapper(*command)
    stdout, err = again.communicate(timeout=60)
    assert again.returncode == 0 and "2 captioned, 0 failed, 2 skipped" in err
    videos = [json.loads(line)["video"] for line in out.read_text().splitlines()]
    assert videos[:2] == [json.loads(line)["video"] for line in lines] and len(set(videos)) == 4
    assert [line.split(": ", 1)[0] for line in stdout.splitlines()] == videos[2:]


def test_ctrl_c_without_output_says_nothing_was_saved(clip_tree):
    proc = fake_clapper("caption", str(clip_tree), stall_after=1)
    assert proc.stdout.readline().startswith(str(clip_tree))  # the first caption is out
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "1 of 4 videos were captioned above; nothing was saved (with --output FILE.jsonl" in err


def test_failed_video_exit_1_with_summary(clip_tree, tmp_path):
    from tests.cli.conftest import corrupt_video

    bad = corrupt_video(tmp_path / "bad.mp4")
    proc = fake_clapper("caption", str(clip_tree / "a.mp4"), str(bad), str(clip_tree / "b.mp4"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert len(out.splitlines()) == 2 and "2 captioned, 1 failed" in err and "failed: " in err
