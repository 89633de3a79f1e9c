"""CLI test helpers: an isolated config, the stand-in model, a folder of small videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.video import make_video


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty config file and no CLAPPER_* variables from the caller."""
    import os

    for name in list(os.environ):
        if name.startswith("CLAPPER_"):
            monkeypatch.delenv(name)
    path = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("CLAPPER_CONFIG", str(path))
    return path


@pytest.fixture
def fake_model(monkeypatch):
    from tests.cli.fake_model import install

    install(monkeypatch)


@pytest.fixture(scope="session")
def clip_tree(tmp_path_factory) -> Path:
    """videos/ with 4 clips in nested folders, a hidden file and a text file (not videos)."""
    root = tmp_path_factory.mktemp("clips") / "videos"
    (root / "sub" / "deeper").mkdir(parents=True)
    make_video(root / "b.mp4", frames=20, fps=10)
    make_video(root / "a.mp4", frames=10, fps=10)
    make_video(root / "sub" / "c.mkv", frames=30, fps=10)
    make_video(root / "sub" / "deeper" / "d.mp4", frames=40, fps=10)
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden.mp4").write_bytes(b"hidden")
    return root


def corrupt_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path
