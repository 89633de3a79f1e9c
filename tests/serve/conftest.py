"""One `clapper serve` process (demo model, CPU, API key) for the whole test session, in a folder of videos."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.fixtures.video import make_video
from tests.serve.harness import start_server

LIMIT_MB = 0.05  # --max-video-mb: a few KB of test video fit, 60 KB do not


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory) -> Path:
    """root/videos (the server's start directory) with a clip, a text file and two symlinks; root/outside."""
    root = tmp_path_factory.mktemp("serve")
    videos, outside = root / "videos", root / "outside"
    videos.mkdir()
    outside.mkdir()
    make_video(videos / "clip.mp4", frames=20, fps=10)
    make_video(outside / "secret.mp4", frames=10, fps=10)
    (videos / "notes.txt").write_text("not a video\n")
    (videos / "escape.mp4").symlink_to(outside / "secret.mp4")
    (videos / "same.mp4").symlink_to(videos / "clip.mp4")
    (videos / "sub").mkdir()
    return videos


@pytest.fixture(scope="session")
def server(served_dir):
    srv = start_server(served_dir, "--max-video-mb", str(LIMIT_MB), "--max-new-tokens", "12")
    yield srv
    assert srv.stop() in (0, -15, 130), srv.log.read_text()


@pytest.fixture(scope="session")
def clip_data_url(served_dir) -> str:
    return "data:video/mp4;base64," + base64.b64encode((served_dir / "clip.mp4").read_bytes()).decode()


@pytest.fixture(scope="session")
def local_model():
    """The demo model in this process: the reference the server's answers must equal."""
    from clapper_core import runner
    from clapper_core.settings import resolve

    settings = resolve({"max_new_tokens": 12}, env={}, path=Path("/nonexistent/config.toml"))
    return runner.load(settings), settings
