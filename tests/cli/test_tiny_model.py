"""`clapper ask` and `clapper caption --json` on the shared sample videos with a real tiny model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clapper_core.records import validate
from tests.fixtures.video import SHARED_VIDEOS

REPO = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--max-frames", "8", "--max-new-tokens", "6"]


def clapper(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clapper_cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def shared_videos() -> list[Path]:
    videos = sorted(p for p in SHARED_VIDEOS.glob("*") if p.suffix in {".mp4", ".mkv", ".mpg"})
    if not videos:
        pytest.skip(f"no sample videos in {SHARED_VIDEOS}")
    return videos


def test_ask_with_a_tiny_model(tiny_model_dir, shared_videos):
    video = shared_videos[0]
    result = clapper("ask", str(video), "what happens?", "what moves?", "--model", str(tiny_model_dir), *FAST)
    assert result.returncode == 0, result.stderr
    assert "visual tokens · cpu fp32 · decode" in result.stderr and "demo model" not in result.stderr
    # a random model answers gibberish, but two answers, each on stdout, each at most 6 tokens
    assert result.stdout.count("\n") >= 2


def test_caption_json_on_the_shared_videos(tiny_model_dir, shared_videos, tmp_path):
    out = tmp_path / "captions.jsonl"
    result = clapper("caption", str(SHARED_VIDEOS), "--json", "-o", str(out), "--model", str(tiny_model_dir), *FAST)
    assert result.returncode == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(o["video"]).name for o in objs] == [p.name for p in shared_videos]
    for obj in objs:
        assert validate(obj) == [] and obj["error"] is None and obj["task"] == "caption"
        assert 1 <= obj["frames"] <= 8 and len(obj["timestamps"]) == obj["frames"]
        assert obj["new_tokens"] <= 6 and obj["model"] == str(tiny_model_dir)
        assert all(obj["timings"][k] is not None for k in ("decode_s", "encode_s", "prefill_s", "generate_s"))
    assert out.read_text().splitlines() == result.stdout.splitlines()
