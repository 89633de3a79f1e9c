"""`clapper probe`: exit codes, stdout vs stderr, JSON, contact sheet, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

from clapper_cli.main import main


def run(capsys, *args):
    code = main(["probe", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_human_output(capsys, tiny_video):
    code, out, err = run(capsys, tiny_video, "--num-frames", "5")
    assert code == 0 and not err
    assert "64×48" in out and "5 frames" in out and "2 segments" in out and "441" in out


def test_json(capsys, tiny_video):
    code, out, err = run(capsys, tiny_video, "--json", "--fps", "2")
    data = json.loads(out)
    assert code == 0 and not err
    assert data["video"]["width"] == 64 and data["sampling"]["num_frames"] == 8
    assert data["sampling"]["visual_tokens"] == 245 + 245 and data["sheet"] is None
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
