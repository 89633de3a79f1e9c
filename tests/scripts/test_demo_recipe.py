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
    from scripts.demo_model import standardize_vision_features, world_frames

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
    """`python scripts/demo_model.py` writes every order question, end colours and varied caption prompts by
    default; each `--no-...` flag turns one off."""
    from scripts import demo_model as demo

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


def _corner_steps(model_dir, scene, ob):
    """How far the 3x3 cell of corner object `ob` moves between consecutive frames at 1 fps (mid-second): (3,)."""
    from clapper_core.model import LoadConfig, load_model
    from clapper_core.model.time_perceiver import cell_history, grid_pool
    from clapper_core.synthetic.world import corner_of, frames_at_one_fps

    loaded = load_model(LoadConfig(model=str(model_dir), quant="fp32", device="cpu"))
    model, processor = loaded.model.eval(), loaded.processor
    frames = frames_at_one_fps(scene)  # (4, H, W, 3)
    with torch.no_grad():
        patches = model.model.standardize_patches(model.model.get_frame_patches(processor.preprocess_frames(frames)))
    row, col = corner_of(scene, ob)
    cells = grid_pool(patches[None], 3)[:, :, 3 * (2 * row) + 2 * col, None]  # (1, 4, 1, Dv)
    real = torch.ones(cells.shape[:2], dtype=torch.bool)  # (1, 4)
    return cell_history(cells, real, cells.shape[1])[1][0, 0]  # (3,): the step sizes the direct path reads


def test_attention_gain_keeps_a_still_corner_still(tmp_path):
    """With the random tower's attention as initialised, a still corner object's cell changes when the mover moves
    or another corner object changes, on the scale of its own colour change; the recipe's gain keeps it still."""
    import dataclasses
    import random

    from clapper_core.model.tiny import build_tiny_clapper
    from clapper_core.synthetic.world import Scene, sample_scene
    from scripts.demo_model import TEXT, VISION, Recipe, standardize_vision_features

    rng = random.Random(4)
    scene = next(s for s in (sample_scene(rng) for _ in range(200)) if len(s.objects) == 3)
    mover, still, other = scene.objects
    # The second corner object changes colour every second; the first changes once, at the third second.
    n = scene.config.seconds
    other = dataclasses.replace(other, role="changer", visible=(True,) * n,
                                colours=tuple(("red", "blue")[b % 2] for b in range(n)))
    still = dataclasses.replace(still, role="static", visible=(True,) * n, colours=("green",) * n)
    turned = dataclasses.replace(still, role="changer", colours=("green", "green", "white", "white"))
    ratios = {}
    for gain in (1.0, Recipe.vision_attention_gain):
        model_dir = build_tiny_clapper(tmp_path / str(gain), vision_config=VISION, text_config=TEXT)
        standardize_vision_features(model_dir, scenes=16, attention_gain=gain)
        quiet = _corner_steps(model_dir, Scene(scene.config, (mover, still, other)), still)  # (3,)
        event = _corner_steps(model_dir, Scene(scene.config, (mover, turned, other)), turned)[1]  # its own change
        ratios[gain] = float(quiet.max() / event)
    assert ratios[1.0] > 0.3, f"the test expects leakage at gain 1 (still/changed {ratios[1.0]:.2f})"
    assert ratios[Recipe.vision_attention_gain] < 0.15, ratios


def test_recipe_arguments_set_the_vision_attention_gain_loss_average_seed_and_tower_training():
    import argparse

    from scripts import demo_model as demo

    parser = argparse.ArgumentParser()
    demo.add_recipe_arguments(parser)
    assert demo.recipe_from_arguments(parser.parse_args([])).vision_attention_gain == 0.1
    assert demo.recipe_from_arguments(parser.parse_args(["--vision-attention-gain", "1"])).vision_attention_gain == 1
    assert demo.recipe_from_arguments(parser.parse_args([])).loss_average == "token"
    assert demo.recipe_from_arguments(parser.parse_args(["--loss-average", "sample"])).loss_average == "sample"
    assert demo.recipe_from_arguments(parser.parse_args([])).seed == 0
    assert demo.recipe_from_arguments(parser.parse_args(["--seed", "2"])).seed == 2
    default = demo.recipe_from_arguments(parser.parse_args([]))
    assert (default.train_vision, default.vision_lr, default.freeze_vision_attention) == (False, None, False)
    tower = demo.recipe_from_arguments(parser.parse_args(["--train-vision", "--vision-lr", "5e-4"]))
    assert (tower.train_vision, tower.vision_lr, tower.freeze_vision_attention) == (True, 5e-4, False)
    frozen = demo.recipe_from_arguments(parser.parse_args(["--train-vision", "--freeze-vision-attention"]))
    assert frozen.freeze_vision_attention and frozen.vision_lr is None


@pytest.mark.parametrize("fields, says", [
    (dict(freeze_vision_attention=True), "--freeze-vision-attention only acts on a vision tower that trains"),
    (dict(vision_lr=1e-4), "--vision-lr only acts on a vision tower that trains"),
    (dict(vision_lr=1e-4, freeze_vision_attention=True), "--vision-lr and --freeze-vision-attention only acts"),
    (dict(train_vision=True, vision_lr=0.0), "--vision-lr must be positive"),
    (dict(stage2_steps=0), "the recipe's stage 2: --steps must be at least 1, got 0"),
    (dict(stage1_lr=-1.0), "the recipe's stage 1: --lr must be positive"),
    (dict(loss_average="mean"), "--loss-average 'mean' is not one of"),
])
def test_a_recipe_refuses_tower_options_that_would_do_nothing(fields, says):
    from clapper_core.errors import ConfigError
    from scripts.demo_model import Recipe

    with pytest.raises(ConfigError, match=says):
        Recipe(**fields)


def test_demo_command_refuses_tower_options_without_the_tower_before_writing_anything(tmp_path, capsys):
    from scripts import demo_model as demo

    with pytest.raises(SystemExit) as stop:
        demo.main(["--work", str(tmp_path / "run"), "--vision-lr", "5e-5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--vision-lr only acts on a vision tower that trains: add --train-vision" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_train_recipe_hands_checkpointing_and_resume_to_both_stages(monkeypatch, tmp_path):
    from clapper_core.train import trainer
    from scripts import demo_model as demo

    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **_: seen.append(cfg))
    out = demo.train_recipe(tmp_path / "base", tmp_path / "train.jsonl", tmp_path, save_every=500, resume=True)
    assert out == tmp_path / "stage2"
    assert [(c.stage, c.save_every, c.resume) for c in seen] == [(1, 500, True), (2, 500, True)]
    assert seen[1].model == str(tmp_path / "stage1")
    seen.clear()
    demo.train_recipe(tmp_path / "base", tmp_path / "train.jsonl", tmp_path)  # the demo command's default
    assert [(c.save_every, c.resume) for c in seen] == [(0, False), (0, False)]


def test_train_recipe_trains_the_tower_in_stage_2_only_when_asked(monkeypatch, tmp_path):
    from clapper_core.train import trainer
    from scripts import demo_model as demo

    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **_: seen.append(cfg))
    recipe = demo.Recipe(train_vision=True, vision_lr=5e-4)
    demo.train_recipe(tmp_path / "base", tmp_path / "train.jsonl", tmp_path, recipe=recipe)
    assert [(c.stage, c.train_vision, c.vision_lr) for c in seen] == [(1, False, None), (2, True, 5e-4)]
    seen.clear()
    demo.train_recipe(tmp_path / "base", tmp_path / "train.jsonl", tmp_path)
    assert [(c.train_vision, c.vision_lr) for c in seen] == [(False, None), (False, None)]


def test_frozen_vision_attention_names_every_attention_parameter_of_the_tower(monkeypatch, tmp_path, tiny_model_dir):
    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration
    from clapper_core.train import trainer
    from scripts import demo_model as demo

    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **_: seen.append(cfg))
    recipe = demo.Recipe(train_vision=True, freeze_vision_attention=True)
    demo.train_recipe(tiny_model_dir, tmp_path / "train.jsonl", tmp_path, recipe=recipe)
    assert seen[0].frozen == () and seen[1].train_vision
    names = [n for n, _ in ClapperForConditionalGeneration.from_pretrained(str(tiny_model_dir)).named_parameters()]
    frozen = [n for n in names if n.startswith(seen[1].frozen)]
    tower_attention = [n for n in names if n.startswith("model.vision_tower.") and ".self_attn." in n]
    assert frozen == tower_attention and len(frozen) == 8 * len(seen[1].frozen)  # q, k, v, out: weight and bias


def test_frozen_vision_attention_reads_the_older_tower_layout_from_the_weights(tmp_path):
    """A tower saved as `vision_tower.vision_model.` (older LLaVA-OneVision layouts) is named as its weights name it."""
    from safetensors.torch import save_file

    from scripts.demo_model import vision_attention_prefixes

    tower = "model.vision_tower.vision_model.encoder.layers"
    names = [f"{tower}.{i}.{part}" for i in (1, 0, 10, 2) for part in ("self_attn.q_proj.weight", "mlp.fc1.weight")]
    save_file({n: torch.zeros(1) for n in names + ["model.multi_modal_projector.linear_1.weight"]},
              str(tmp_path / "model.safetensors"))
    assert vision_attention_prefixes(tmp_path) == tuple(f"{tower}.{i}.self_attn." for i in (0, 1, 2, 10))
