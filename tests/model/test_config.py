"""Token geometry: every count follows from the config."""

from __future__ import annotations

import pytest

from clapper_core.model.configuration_clapper import (
    ClapperConfig,
    split_segments,
    visual_token_count,
)


@pytest.fixture(scope="module")
def full():
    return ClapperConfig()  # SigLIP-so400m-384/14 (27x27 patches), 7x7 perceiver


def test_default_geometry_is_245_per_segment(full):
    assert full.patch_grid == 27 and full.keyframe_grid == 14
    assert full.token_costs.segment(4) == 196 + 49 == 245


@pytest.mark.parametrize("frames, tokens", [(1, 196), (2, 245), (3, 245), (4, 245)])
def test_trailing_segments(full, frames, tokens):
    assert full.token_costs.segment(frames) == tokens


def test_96_frames_cost_5880_tokens(full):
    assert visual_token_count(full, 96) == 5880
    assert visual_token_count(full, [4] * 24) == 5880


def test_frame_counts_split_into_segments(full):
    assert split_segments(10, 4) == [4, 4, 2]
    assert split_segments(9, 4) == [4, 4, 1]
    assert visual_token_count(full, 9) == 245 * 2 + 196
    assert visual_token_count(full, 0) == 0


def test_even_grid_pools_to_the_same_keyframe_grid():
    cfg = ClapperConfig(vision_config={"image_size": 392, "patch_size": 14})  # 28x28
    assert cfg.patch_grid == 28 and cfg.keyframe_tokens == 196


@pytest.mark.parametrize("fast_path, per_segment", [("perceiver", 245), ("avgpool", 245), ("none", 196)])
def test_fast_path_switch(fast_path, per_segment):
    cfg = ClapperConfig(fast_path=fast_path)
    assert visual_token_count(cfg, [4]) == per_segment


def test_grids_are_configurable():
    cfg = ClapperConfig(perceiver_grid=4, keyframe_pool_stride=3)
    assert cfg.keyframe_tokens == 9 * 9 and cfg.fast_tokens == 16


@pytest.mark.parametrize(
    "kwargs, match",
    [({"fast_path": "lstm"}, "fast_path"), ({"perceiver_heads": 5}, "perceiver_heads"),
     ({"segment_size": 0}, "segment_size"),
     ({"vision_feature_mean": [0.0] * 1152}, "go together"),
     ({"vision_feature_mean": [0.0] * 3, "vision_feature_std": [1.0] * 3}, "vision width"),
     ({"vision_feature_mean": [0.0] * 1152, "vision_feature_std": [0.0] * 1152}, "positive")],
)
def test_invalid_values_are_rejected(kwargs, match):
    with pytest.raises(Exception, match=match):
        ClapperConfig(**kwargs)


def test_round_trip_and_auto_config(tmp_path):
    from transformers import AutoConfig

    cfg = ClapperConfig(perceiver_grid=5, segment_timestamps=False, fast_path="avgpool")
    cfg.save_pretrained(tmp_path)
    back = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(back, ClapperConfig)
    assert (back.perceiver_grid, back.segment_timestamps, back.fast_path) == (5, False, "avgpool")
    assert back.vision_config.model_type == "siglip_vision_model" and back.text_config.model_type == "qwen2"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"perceiver_grid": 4, "keyframe_pool_stride": 3}, {"fast_path": "none", "segment_size": 8},
     {"vision_config": {"image_size": 392, "patch_size": 14}}, {"vision_config": {"hidden_size": 64}}],
)
def test_config_json_counts_like_the_config(kwargs, tmp_path):
    """`token_costs` reads a saved config.json (no transformers) and agrees with the loaded config."""
    import json

    from clapper_core.model.tokens import token_costs

    cfg = ClapperConfig(**kwargs)
    cfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert token_costs(saved) == cfg.token_costs
    assert token_costs(cfg.to_diff_dict()) == cfg.token_costs


def test_llava_onevision_config_json_counts_like_its_conversion(tiny_llava_onevision_dir):
    import json

    from clapper_core.model.llava_onevision import clapper_config_from_llava_onevision
    from clapper_core.model.tokens import token_costs

    data = json.loads((tiny_llava_onevision_dir / "config.json").read_text())
    assert token_costs(data) == clapper_config_from_llava_onevision(data).token_costs
    assert token_costs({"model_type": "llava_onevision"}).to_dict() == {
        "keyframe_tokens": 196, "fast_tokens": 49, "segment_size": 4}
