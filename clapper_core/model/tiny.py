"""Tiny random Clapper models, built from configs and saved like real checkpoints.

Tests, benchmarks and the demo-model trainer start from these: nothing is downloaded.
SigLIP 28 px / patch 4 gives a 7x7 patch grid that still pools with stride 2 (to 4x4 = 16 keyframe
tokens, an odd grid like SigLIP-384/14's 27x27), and a 3x3 perceiver grid gives 9 temporal tokens.
"""

from __future__ import annotations

from pathlib import Path

TINY_TEXTS = (
    "a red ball moves to the left, then to the right.",
    "what happens in the video? the square turns blue after the circle appears.",
    "first, then, after, before, at the end, in the beginning, how many times, which color",
    "0 1 2 3 4 5 6 7 8 9 [0.0s] [4.0s] yes no left right up down red green blue yellow",
)

TINY_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    image_size=28, patch_size=4, vision_use_head=False,
)  # fmt: skip
TINY_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
)  # fmt: skip


def tiny_config(tokenizer, **overrides):
    """A ClapperConfig with tiny SigLIP / Qwen2 sub-configs; `overrides` set top-level fields,
    `vision_config` / `text_config` dicts are merged into the tiny ones."""
    from clapper_core.model.configuration_clapper import ClapperConfig
    from clapper_core.model.tokenizer import VIDEO_TOKEN

    vision = {**TINY_VISION, **overrides.pop("vision_config", {})}
    text = {
        **TINY_TEXT,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **overrides.pop("text_config", {}),
    }
    fields = dict(perceiver_grid=3, perceiver_depth=1, perceiver_heads=4, perceiver_mlp_ratio=2)
    fields.update(overrides)
    return ClapperConfig(
        vision_config=vision,
        text_config=text,
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        **fields,
    )


def build_tiny_clapper(
    out_dir: str | Path, *, seed: int = 0, vocab_size: int = 320, texts=TINY_TEXTS, **overrides
) -> Path:
    """Build a tiny random Clapper (model + tokenizer + preprocessor) and save it to `out_dir`.

    `overrides` go to `tiny_config` (e.g. `fast_path="avgpool"`, `perceiver_grid=2`,
    `text_config={"num_hidden_layers": 4}`). Loadable with `load_model(LoadConfig(model=out_dir))`.
    """
    import torch

    from clapper_core.model.loading import _quiet_transformers
    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration
    from clapper_core.model.processing_clapper import ClapperProcessor
    from clapper_core.model.tokenizer import build_small_tokenizer

    out = Path(out_dir)
    tokenizer = build_small_tokenizer(texts, vocab_size=vocab_size)
    config = tiny_config(tokenizer, **overrides)
    torch.manual_seed(seed)
    model = ClapperForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with _quiet_transformers():
        model.save_pretrained(str(out))
    ClapperProcessor(tokenizer, config).save_pretrained(out)
    return out


def build_tiny_llava_onevision(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 320) -> Path:
    """A tiny random `LlavaOnevisionForConditionalGeneration` saved to `out_dir` (the parity tests'
    starting point): the same tiny SigLIP / Qwen2 shapes as `build_tiny_clapper`."""
    import torch
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from clapper_core.model.loading import _quiet_transformers
    from clapper_core.model.processing_clapper import ClapperProcessor
    from clapper_core.model.tokenizer import VIDEO_TOKEN, build_small_tokenizer

    out = Path(out_dir)
    tokenizer = build_small_tokenizer(TINY_TEXTS, vocab_size=vocab_size)
    text = {**TINY_TEXT, "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id}
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", **TINY_VISION},
        text_config={"model_type": "qwen2", **text},
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        image_token_index=tokenizer.pad_token_id,  # images are not used here
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    with _quiet_transformers():
        model.save_pretrained(str(out))
    # A Clapper processor writes the same tokenizer files and a SigLIP preprocessor config.
    from clapper_core.model.llava_onevision import clapper_config_from_llava_onevision

    ClapperProcessor(tokenizer, clapper_config_from_llava_onevision(config.to_dict())).save_pretrained(out)
    return out


# --- real shapes, random weights (benchmarks: speed and memory do not depend on the values) --

SIGLIP_SO400M_384 = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
    patch_size=14, image_size=384, vision_use_head=False,
)  # fmt: skip
QWEN2 = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
               intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
}  # fmt: skip


def real_shape_config(llm: str = "0.5b", **overrides):
    """SigLIP-so400m-384 + Qwen2-`llm` ("0.5b" or "7b") as a ClapperConfig; `overrides` set top-level fields."""
    from clapper_core.model.configuration_clapper import ClapperConfig

    return ClapperConfig(vision_config=dict(SIGLIP_SO400M_384), text_config=dict(QWEN2[llm]), **overrides)


def random_model(config, *, dtype=None, device: str = "cpu", seed: int = 0):
    """A Clapper model at `config`'s shapes with cheap random weights (no per-module init).

    Matrices get N(0, 0.02), norms weight 1 and bias 0, so activations stay finite; the
    TimePerceiver's gate is opened slightly so its full computation runs (not the pooling shortcut).
    """
    import torch
    from transformers.initialization import no_init_weights

    from clapper_core.model.modeling_clapper import ClapperForConditionalGeneration

    dtype = dtype or torch.float32
    gen = torch.Generator(device=device).manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights():
            model = ClapperForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    if config.tie_word_embeddings:
        model.tie_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.02, generator=gen)
            elif name.endswith("weight") and "norm" in name:
                p.fill_(1.0)
            else:
                p.zero_()
        tp = model.model.time_perceiver
        if tp is not None:
            tp.gate.fill_(1e-3)
    return model.eval()
