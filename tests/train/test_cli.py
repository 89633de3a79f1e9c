"""`clapper train`, `clapper train plot`, `clapper train synth` through the CLI entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from clapper_cli.main import main


def test_train_cli_skips_bad_records_and_prints_only_the_model_path(synth_data, tiny_model_dir, tmp_path, capsys):
    lines = synth_data.train_file.read_text().splitlines()[:6]
    bad = json.loads(lines[0])
    bad["video"] = "videos/absent.mp4"
    lines.insert(2, json.dumps(bad))
    lines.append("{broken")
    data = synth_data.out_dir / "with_bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--from", str(tiny_model_dir), "-o", str(out), "--steps", "2",
                 "-b", "2", "--log-every", "1", "--cache-dir", str(tmp_path / "cache")])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert "with_bad.jsonl:3: skipped" in stderr and "with_bad.jsonl:8: skipped" in stderr
    assert "skipped 2 bad records of 8" in stderr
    assert "step 2/2" in stderr and "tok/s" in stderr and "samples/s" in stderr and "data wait" in stderr
    assert "peak" in stderr and "eta" in stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    png = tmp_path / "loss.png"
    assert main(["train", "plot", str(out / "metrics.jsonl"), "-o", str(png)]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ctrl_c_saves_a_checkpoint_at_that_step_and_says_so(synth_data, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "clapper_cli.main", "train", "--data", str(synth_data.train_file), "--from",
           str(tiny_model_dir), "-o", str(out), "--steps", "500", "-b", "2", "--log-every", "1", "--save-every",
           "0", "--num-workers", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stderr:  # wait until training is under way (a step printed), then Ctrl-C
        lines.append(line)
        if line.startswith("step 2/") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(lines) + rest
    assert proc.returncode == 130, stderr
    assert stdout == ""  # no model path: the run did not finish
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(saved) == 1, saved
    step = int(saved[0].split("-")[1])
    assert step >= 2 and f"interrupted: saved a checkpoint at step {step} of 500" in stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    meta = json.loads((out / "checkpoints" / saved[0] / "trainer.json").read_text())
    assert meta["step"] == step and len((out / "metrics.jsonl").read_text().splitlines()) == step


def test_train_cli_usage_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "x.jsonl"), "-o", str(tmp_path / "o"), "--lora"]) == 2
    assert "--stage 2" in capsys.readouterr().err
    assert main(["train", "--stage", "2"]) == 2  # no --data / --output
    assert "--data" in capsys.readouterr().err
    code = main(["train", "--data", str(tmp_path / "absent.jsonl"), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error:") and "absent.jsonl" in err and len(err.strip().splitlines()) == 1


def test_synth_cli(tmp_path, capsys):
    assert main(["train", "synth", str(tmp_path / "s"), "-n", "2", "--seed", "5"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str((tmp_path / "s/train.jsonl").resolve())
    assert "wrote 2 videos" in captured.err
    assert len(list((tmp_path / "s/videos").glob("*.mp4"))) == 2
    assert "Answer with" not in (tmp_path / "s/train.jsonl").read_text()


def test_synth_cli_multiple_choice(tmp_path, capsys):
    assert main(["train", "synth", str(tmp_path / "s"), "-n", "3", "--multiple-choice", "1"]) == 0
    records = (tmp_path / "s/train.jsonl").read_text().splitlines()
    lettered = [r for r in records if "Answer with the option's letter" in r]
    assert len(lettered) == len(records) - 3  # every question; the 3 caption records stay open
    assert main(["train", "synth", str(tmp_path / "t"), "--multiple-choice", "2"]) == 2  # a share, 0 to 1


def test_synth_cli_all_orders(tmp_path, capsys):
    from clapper_core.synthetic.__main__ import main as module_main

    assert main(["train", "synth", str(tmp_path / "one"), "-n", "8", "--seed", "6"]) == 0
    assert main(["train", "synth", str(tmp_path / "all"), "-n", "8", "--seed", "6", "--all-orders"]) == 0
    assert module_main([str(tmp_path / "mod"), "-n", "8", "--seed", "6", "--all-orders"]) == 0

    def orders(name):
        return sum('"family": "order"' in line for line in (tmp_path / name / "qa.jsonl").read_text().splitlines())

    assert orders("all") == orders("mod") > 2 * orders("one") > 0


def test_synth_cli_end_colours_caption_prompts_and_all_changes(tmp_path):
    from clapper_core.synthetic import CAPTION_PROMPT
    from clapper_core.synthetic.__main__ import main as module_main

    flags = ["-n", "12", "--seed", "6", "--end-colours", "--caption-prompts", "--all-changes"]
    assert main(["train", "synth", str(tmp_path / "one"), "-n", "12", "--seed", "6"]) == 0
    assert main(["train", "synth", str(tmp_path / "cli"), *flags]) == 0
    assert module_main([str(tmp_path / "mod"), *flags]) == 0
    assert (tmp_path / "mod" / "train.jsonl").read_text() == (tmp_path / "cli" / "train.jsonl").read_text()
    text = {name: (tmp_path / name / "train.jsonl").read_text() for name in ("one", "cli")}
    assert "at the end?" in text["cli"] and "at the end?" not in text["one"]
    assert text["one"].count(CAPTION_PROMPT) == 12 > text["cli"].count(CAPTION_PROMPT)
