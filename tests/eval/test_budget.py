"""The visual-token budget picks the largest frame count that fits."""

from __future__ import annotations

import pytest

from clapper_core.errors import ConfigError
from clapper_core.eval.budget import frames_for_budget, model_frames_for_budget, model_visual_tokens


def _standard_config():
    """The released layout: SigLIP-384/14 keyframes pooled to 14x14 = 196, a 7x7 perceiver = 49."""
    from clapper_core.model.configuration_clapper import ClapperConfig

    return ClapperConfig(text_config={"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                                      "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100})


def test_standard_layout_96_frames_for_6000_and_24_for_1500():
    config = _standard_config()
    assert (config.keyframe_tokens, config.fast_tokens, config.segment_size) == (196, 49, 4)
    assert model_frames_for_budget(config, 6000) == 96
    assert model_visual_tokens(config, 96) == 5880
    assert model_frames_for_budget(config, 1500) == 24
    assert model_visual_tokens(config, 24) == 1470
    # the paper's other budgets
    assert model_frames_for_budget(config, 1000) == 16
    assert model_frames_for_budget(config, 3000) == 48
    # one more frame opens a segment whose keyframe no longer fits
    assert model_visual_tokens(config, 97) > 6000


def test_fast_path_off_gives_keyframes_only():
    config = _standard_config()
    config.fast_path = "none"
    assert model_frames_for_budget(config, 6000) == 6000 // 196 * 4


@pytest.mark.parametrize("budget", [1, 2, 3, 10, 245, 246, 5879, 5880, 5881, 100_000])
def test_matches_linear_scan(budget):
    cost = lambda n: ((n + 3) // 4) * 196 + (n // 4) * 49 + (49 if n % 4 >= 2 else 0)  # noqa: E731
    if cost(1) > budget:
        with pytest.raises(ConfigError, match="single frame"):
            frames_for_budget(budget, cost)
        return
    best = max(n for n in range(1, 2100) if cost(n) <= budget)
    assert frames_for_budget(budget, cost) == best


@pytest.mark.parametrize("bad", [0, -5, True, 2.5])
def test_rejects_non_budgets(bad):
    with pytest.raises(ConfigError, match="max-visual-tokens"):
        frames_for_budget(bad, lambda n: n)
