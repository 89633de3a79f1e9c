"""ClapperForConditionalGeneration on tiny random weights: shapes, token counts, checks, round trip."""

from __future__ import annotations

import pytest
import torch

from clapper_core.errors import VisualTokenMismatchError
from clapper_core.model.configuration_clapper import visual_token_count
from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return ClapperForConditionalGeneration.from_pretrained(str(tiny_model_dir)).eval()


def _pixels(model, t):
    s = model.config.vision_config.image_size
    return torch.randn(t, 3, s, s, generator=torch.Generator().manual_seed(t))


@pytest.mark.parametrize("sizes", [[4], [4, 4, 2], [4, 1], [3], [1]])
def test_video_features_follow_the_config_count(model, sizes):
    cfg = model.config
    with torch.no_grad():
        feats = model.get_video_features(_pixels(model, sum(sizes)), sizes)
    assert cfg.keyframe_tokens == 16 and cfg.fast_tokens == 9  # tiny: 7x7 patches -> 4x4, 3x3 perceiver
    assert feats.shape == (visual_token_count(cfg, sizes), cfg.text_config.hidden_size)


def test_segment_tokens_are_keyframe_then_temporal(model):
    px = _pixels(model, 6)
    with torch.no_grad():
        both = model.get_video_features(px, [4, 2])
        first = model.get_video_features(px[:4], [4])
        key_only = model.get_video_features(px[4:5], [1])
    torch.testing.assert_close(both[:25], first)
    torch.testing.assert_close(both[25:41], key_only)  # keyframe of the 2-frame segment


def test_96_frames_at_siglip_384_cost_5880_tokens(tiny_model_dir):
    """The real patch geometry (384 px / 14 -> 27x27) with a narrow tower, so it stays fast."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model_dir)
    cfg.vision_config.image_size, cfg.vision_config.patch_size, cfg.vision_config.num_hidden_layers = 384, 14, 1
    cfg.perceiver_grid = 7
    model = ClapperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        feats = model.get_video_features(torch.randn(96, 3, 384, 384), [4] * 24)
    assert feats.shape[0] == 5880 == visual_token_count(cfg, 96)


def test_fast_path_switch_changes_tokens_and_parameters(tiny_model_dir):
    from transformers import AutoConfig

    for fast_path, per_seg, has_tp in (("avgpool", 25, False), ("none", 16, False)):
        cfg = AutoConfig.from_pretrained(tiny_model_dir)
        cfg.fast_path = fast_path
        model = ClapperForConditionalGeneration(cfg).eval()
        assert (model.model.time_perceiver is not None) == has_tp
        with torch.no_grad():
            feats = model.get_video_features(_pixels(model, 4), [4])
        assert feats.shape[0] == per_seg


def _inputs(tiny_loaded, frames, timestamps, question="what happens?"):
    return tiny_loaded.processor(frames=frames, timestamps=timestamps, question=question)


def test_placeholder_mismatch_raises(model, tiny_loaded, tiny_frames):
    inputs = _inputs(tiny_loaded, *tiny_frames)
    ids = inputs["input_ids"]
    vid = model.config.video_token_id
    first = int((ids[0] == vid).nonzero()[0])
    inputs["input_ids"] = torch.cat([ids[:, :first], ids[:, first + 1 :]], dim=1)  # one placeholder fewer
    inputs["attention_mask"] = inputs["attention_mask"][:, 1:]
    with pytest.raises(VisualTokenMismatchError, match="74 video placeholder tokens but the video gives 75"):
        model(**inputs)


def test_forward_with_labels_gives_a_loss(model, tiny_loaded, tiny_frames):
    inputs = _inputs(tiny_loaded, *tiny_frames)
    labels = inputs["input_ids"].clone()
    labels[labels == model.config.video_token_id] = -100
    out = model(**inputs, labels=labels)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad is not None
    model.zero_grad()


def test_save_load_round_trip_reproduces_logits(model, tiny_loaded, tiny_frames, tmp_path):
    inputs = _inputs(tiny_loaded, *tiny_frames)
    with torch.no_grad():
        model.model.time_perceiver.gate.fill_(0.3)  # a "trained" perceiver must survive the round trip
        before = model(**inputs).logits
        model.save_pretrained(tmp_path)
        again = ClapperForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
        after = again(**inputs).logits
        model.model.time_perceiver.gate.zero_()
    torch.testing.assert_close(before, after)
    assert not again.model.time_perceiver.is_untrained()


def test_generate_matches_greedy_decoding(model, tiny_loaded, tiny_frames):
    inputs = _inputs(tiny_loaded, *tiny_frames)
    with torch.no_grad():
        a = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        b = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b) and a.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_a_cache_under_either_name_continues_the_prefix(model, tiny_loaded, tiny_frames, name):
    """transformers 5.24 renamed the cache argument `past_key_values` to `cache`: both names carry it."""
    from transformers import DynamicCache

    from clapper_core.model.modeling_clapper import CACHE_ARG

    inputs = _inputs(tiny_loaded, *tiny_frames)
    ids, n = inputs["input_ids"], inputs["input_ids"].shape[1] - 3
    prefix = {k: (v[:, :n] if k in ("input_ids", "attention_mask") else v) for k, v in inputs.items()}
    with torch.no_grad():
        full = model(**inputs).logits[:, -1]
        first = model(**prefix, use_cache=True, **{name: DynamicCache(config=model.config.text_config)})
        cache = getattr(first, CACHE_ARG)
        assert cache.get_seq_length() == n
        rest = model(input_ids=ids[:, n:], use_cache=True, **{name: cache}).logits[:, -1]
    torch.testing.assert_close(rest, full, rtol=1e-4, atol=1e-4)


def test_configured_feature_statistics_standardise_both_paths(tiny_model_dir):
    """(x - mean) / std reaches the keyframe path and the fast path: with the statistics a model
    holds the features' own mean and std, the result equals feeding standardised patches."""
    m = ClapperForConditionalGeneration.from_pretrained(str(tiny_model_dir)).eval()
    px = _pixels(m, 4)
    with torch.no_grad():
        raw = m.model.get_frame_patches(px)  # (4, P, Dv)
        mean, std = raw.flatten(0, 1).mean(0), raw.flatten(0, 1).std(0)
        m.config.vision_feature_mean, m.config.vision_feature_std = mean.tolist(), std.tolist()
        got = m.get_video_features(px, [4])
        want = m.model.encode_segments((raw - mean) / std, [4])
        m.config.vision_feature_mean = m.config.vision_feature_std = None
        plain = m.get_video_features(px, [4])
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got[:16], plain[:16]) and not torch.allclose(got[16:], plain[16:])
