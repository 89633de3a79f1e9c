"""The demo recipe's projector init: the LLM must get vision features it can tell apart."""

from __future__ import annotations

import shutil

import torch


def _features_and_projector(model_dir, frames):
    from clapper_core.model import LoadConfig, load_model

    loaded = load_model(LoadConfig(model=str(model_dir), quant="fp32", device="cpu"))
    model, processor = loaded.model.eval(), loaded.processor
    with torch.no_grad():
        pixels = torch.cat([processor.preprocess_frames(f[:: max(1, len(f) // 4)]) for f in frames])
        feats = model.model.get_frame_patches(pixels).flatten(0, 1)  # (T*P, Dv)
    return feats, model.model.multi_modal_projector.linear_1


def test_projector_first_layer_sees_standardised_features(tiny_model_dir, tmp_path):
    """A random SigLIP gives the synthetic world features with large shared offsets; the recipe folds
    (x - mean) / std into linear_1, so the world's mean feature lands on the bias and every channel
    counts by its spread, not its offset."""
    from clapper_core.train.demo import standardize_projector_inputs, world_frames

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    frames = world_frames(16, seed=5)
    feats, before = _features_and_projector(model_dir, frames)
    bias = before.bias.detach().clone()
    offset = feats.mean(0).abs().mean() / feats.std(0).mean()
    assert offset > 0.5, "the random tower's features are expected to carry a shared offset"

    standardize_projector_inputs(model_dir, seed=5, scenes=16)
    feats2, after = _features_and_projector(model_dir, frames)
    assert torch.equal(feats, feats2), "the vision tower must not change"
    with torch.no_grad():
        torch.testing.assert_close(after(feats.mean(0)), bias, atol=1e-4, rtol=0)
        expected = before.weight / feats.std(0)  # (Dt, Dv)
        torch.testing.assert_close(after.weight, expected, atol=1e-5, rtol=1e-4)


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
