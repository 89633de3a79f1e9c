"""The demo recipe: feature statistics the LLM and the TimePerceiver can tell apart, and its command's data options."""

from __future__ import annotations

import shutil

import pytest
import torch


def _world_patches(model_dir, frames):
    """The vision tower's raw features and the model's standardised ones over `frames`."""
    from clapper_core.model import LoadConfig, load_model

    loaded = load_model(LoadConfig(model=str(model_dir), quant="fp32", device="cpu"))
    model, processor = loaded.model.eval(), loaded.processor
    with torch.no_grad():
        pixels = torch.cat([processor.preprocess_frames(f[:: max(1, len(f) // 4)]) for f in frames])
        raw = model.model.get_frame_patches(pixels)  # (T, P, Dv)
        return raw.flatten(0, 1), model.model.standardize_patches(raw).flatten(0, 1)  # (T*P, Dv) each


def test_recipe_standardises_vision_features_inside_the_model(tiny_model_dir, tmp_path):
    """A random SigLIP gives the synthetic world features with large shared offsets; the recipe
    measures them into the config, so both paths see zero-mean, unit-spread channels."""
    from clapper_core.model.configuration_clapper import ClapperConfig
    from clapper_core.train.demo import standardize_vision_features, world_frames

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    frames = world_frames(16, seed=5)
    raw, same = _world_patches(model_dir, frames)
    assert torch.equal(raw, same), "no statistics configured: the features pass as they are"
    offset = raw.mean(0).abs().mean() / raw.std(0).mean()
    assert offset > 0.5, "the random tower's features are expected to carry a shared offset"

    standardize_vision_features(model_dir, seed=5, scenes=16)
    config = ClapperConfig.from_pretrained(model_dir)
    assert len(config.vision_feature_mean) == len(config.vision_feature_std) == raw.shape[1]
    raw2, std = _world_patches(model_dir, frames)
    assert torch.equal(raw, raw2), "the vision tower must not change"
    torch.testing.assert_close(std.mean(0), torch.zeros(raw.shape[1]), atol=1e-3, rtol=0)
    torch.testing.assert_close(std.std(0), torch.ones(raw.shape[1]), atol=1e-3, rtol=0)


def test_frozen_prefixes_stay_bit_identical(quick_config):
    """`frozen` keeps the named parameters out of training whatever the stage trains."""
    from safetensors.torch import load_file

    from clapper_core.train import train

    cfg = quick_config(stage=1, steps=2, frozen=("model.multi_modal_projector.linear_1.",))
    before = load_file(str(cfg.model) + "/model.safetensors")
    train(cfg)
    after = load_file(str(cfg.output / "model.safetensors"))
    for name in ("model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias"):
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["model.multi_modal_projector.linear_2.weight"],
                           after["model.multi_modal_projector.linear_2.weight"])


class _Stop(Exception):
    """Raised in place of writing the data: the arguments are all the test looks at."""


def test_demo_command_passes_its_data_options(monkeypatch, tmp_path):
    """`python -m clapper_core.train.demo` writes every order question, end colours and varied caption prompts by
    default; each `--no-...` flag turns one off."""
    from clapper_core.train import demo

    seen = []

    def record(*args, **kwargs):
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(demo, "generate_dataset", record)
    assert demo.Recipe.all_orders is True
    for argv, want in (([], True), (["--no-all-orders"], False), (["--all-orders"], True)):
        with pytest.raises(_Stop):
            demo.main(["--work", str(tmp_path), *argv])
        assert seen[-1]["all_orders"] is want and seen[-1]["multiple_choice"] == demo.Recipe.multiple_choice
    assert demo.Recipe.end_colours is False and demo.Recipe.caption_prompts is True
    for argv, ends, prompts in (([], False, True), (["--end-colours"], True, True),
                                (["--no-caption-prompts"], False, False)):
        with pytest.raises(_Stop):
            demo.main(["--work", str(tmp_path), *argv])
        assert (seen[-1]["end_colours"], seen[-1]["caption_prompts"]) == (ends, prompts)
    assert demo.Recipe.all_changes is False
    for argv, want in (([], False), (["--all-changes"], True)):
        with pytest.raises(_Stop):
            demo.main(["--work", str(tmp_path), *argv])
        assert seen[-1]["all_changes"] is want
