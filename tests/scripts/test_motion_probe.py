"""scripts/motion_probe.py on a trained model: the direction probes read its own tower and its fast tokens."""

from __future__ import annotations

import argparse
import re


def _motion_probe():
    from scripts import motion_probe

    return motion_probe


def _read(out: str) -> dict[str, float]:
    return {m[1].strip(): float(m[2]) for m in re.finditer(r"^(its [^\n]*?)\s+\d+\s+([\d.]+)%$", out, re.M)}


def test_the_built_in_model_hands_its_llm_the_direction(capsys):
    """The built-in model's tower and fast tokens both carry the mover's direction (chance is 25%)."""
    import torch

    from clapper_core.model import LoadConfig, load_model
    from scripts.demo_model import DEMO_DIR

    loaded = load_model(LoadConfig(model=str(DEMO_DIR), quant="fp32", device="cpu"))
    torch.manual_seed(0)
    _motion_probe()._direction_from_trained(loaded.model.eval(), loaded.processor, DEMO_DIR,
                                            argparse.Namespace(scenes=160, seed=3))
    got = _read(capsys.readouterr().out)
    assert set(got) == {"its tower's 3x3 motion", "its fast tokens"}, got
    assert min(got.values()) >= 80, got


def test_a_keyframe_only_model_is_not_asked_for_direction(monkeypatch, tmp_path, capsys):
    """A keyframe-only model has no fast tokens: the direction probe is left out, and so is the rest."""
    from clapper_core.model.tiny import build_tiny_clapper

    mp = _motion_probe()
    calls = []
    monkeypatch.setattr(mp, "_direction_from_trained", lambda *a: calls.append(a))
    model_dir = build_tiny_clapper(tmp_path / "kf", fast_path="none")
    mp._probe_trained(model_dir, argparse.Namespace(scenes=8, seed=3, count_scenes=8), 6)
    assert calls == [] and "no 3x3 TimePerceiver to probe" in capsys.readouterr().out
