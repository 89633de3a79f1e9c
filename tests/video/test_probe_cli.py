"""`clapper probe`: exit codes, stdout vs stderr, JSON, contact sheet, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clapper_cli.main import main


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    """The default model is clapper-demo here, whatever the machine's own settings say."""
    monkeypatch.setenv("CLAPPER_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("CLAPPER_MODEL", raising=False)


def run(capsys, *args):
    code = main(["probe", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_human_output(capsys, tiny_video):
    code, out, err = run(capsys, tiny_video, "--num-frames", "5")
    assert code == 0 and not err
    # the demo model: 16 keyframe + 9 fast tokens, so segments of 4 and 1 frames cost 25 + 16
    assert "64×48" in out and "5 frames" in out and "2 segments" in out and "41 visual" in out


def test_json(capsys, tiny_video):
    code, out, err = run(capsys, tiny_video, "--json", "--fps", "2")
    data = json.loads(out)
    assert code == 0 and not err
    assert data["video"]["width"] == 64 and data["sampling"]["num_frames"] == 8
    assert data["sampling"]["visual_tokens"] == 25 + 25 and data["sheet"] is None
    assert data["model"]["name"] == "clapper-demo" and not data["model"]["assumed"]
    assert len(data["sampling"]["timestamps"]) == 8 and data["sampling"]["segments"][1]["num_frames"] == 4


def test_sheet(capsys, tiny_video, tmp_path):
    from PIL import Image

    sheet = tmp_path / "sheet.png"
    code, out, err = run(capsys, tiny_video, "--sheet", sheet, "--json", "--num-frames", "5")
    assert code == 0 and json.loads(out)["sheet"] == str(sheet)
    with Image.open(sheet) as im:
        assert im.width > 4 * 192 and im.height > 2 * 144  # 4 columns, 2 rows


def test_errors(capsys, tmp_path, tiny_video):
    code, out, err = run(capsys, tmp_path / "missing.mp4")
    assert code == 1 and not out and err.startswith("Error: ") and "missing.mp4" in err and err.count("\n") == 1
    code, out, err = run(capsys, tiny_video, "--sheet", tmp_path / "sheet.gif")
    assert code == 2 and not out and ".png" in err


def test_probe_does_not_import_torch(tiny_video):
    code = (
        "import sys; from clapper_cli.main import main;"
        f"rc = main(['probe', {str(tiny_video)!r}, '--json']);"
        "print('torch' in sys.modules or 'transformers' in sys.modules, file=sys.stderr); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr.strip() == "False" and json.loads(out.stdout)


@pytest.fixture(scope="module")
def perceiver_2x2_dir(tmp_path_factory):
    from clapper_core.model.tiny import build_tiny_clapper

    return build_tiny_clapper(tmp_path_factory.mktemp("perceiver_2x2"), perceiver_grid=2)


@pytest.mark.parametrize("model, per_segment", [
    (None, (16, 9)),  # the default: clapper-demo
    ("tiny_llava_onevision_dir", None),  # LLaVA-OneVision layout, converted on load
    ("perceiver_2x2_dir", (16, 4)),  # another perceiver grid
])
def test_probe_counts_what_ask_spends(capsys, request, tiny_video, model, per_segment):
    flags = [] if model is None else ["--model", str(request.getfixturevalue(model))]
    sampling = ["--fps", "2", "--max-frames", "6"]  # 6 frames: segments of 4 and 2
    code, out, err = run(capsys, tiny_video, "--json", *sampling, *flags)
    assert code == 0, err
    probed = json.loads(out)
    code = main(["ask", str(tiny_video), "what moves?", "--json", "--device", "cpu", "--max-new-tokens", "2",
                 *sampling, *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    asked = json.loads(out)
    assert asked["frames"] == probed["sampling"]["num_frames"] == 6
    assert probed["sampling"]["visual_tokens"] == asked["visual_tokens"]
    costs = probed["model"]
    assert not costs["assumed"] and asked["visual_tokens"] == 2 * costs["keyframe_tokens"] + 2 * costs["fast_tokens"]
    if per_segment:
        assert (costs["keyframe_tokens"], costs["fast_tokens"]) == per_segment


def test_probe_says_what_it_assumed_without_a_model(capsys, tiny_video, tmp_path):
    code, out, err = run(capsys, tiny_video, "--json", "--num-frames", "4", "--model", tmp_path / "nowhere")
    data = json.loads(out)
    assert code == 0 and data["model"]["assumed"] and data["sampling"]["visual_tokens"] == 196 + 49
    assert err.startswith("Warning: ") and "196 keyframe + 49 fast tokens" in err and err.count("\n") == 1
