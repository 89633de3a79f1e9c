"""ClapperConfig: SigLIP vision tower + keyframe pooling + TimePerceiver + projector + Qwen2.

The token budget of a video follows from this config alone; it is counted in `tokens.py`
(importable without torch or transformers), which `ClapperConfig.token_costs` calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from clapper_core.model import tokens
from clapper_core.model.tokens import TokenCosts, split_segments

FAST_PATHS = ("perceiver", "avgpool", "none")


@strict
class ClapperConfig(PreTrainedConfig):
    r"""
    Configuration of a Clapper video model.

    A video is cut into segments of `segment_size` frames. Each segment costs
    `keyframe_tokens` (the first frame's patch grid pooled by `keyframe_pool_stride`) plus, when
    it has at least 2 frames and `fast_path != "none"`, `perceiver_grid ** 2` temporal tokens.

    Args:
        vision_config: SigLIP vision config (`siglip_vision_model`).
        text_config: Qwen2 config.
        video_token_id: id of the video placeholder token in the prompt.
        segment_size: frames per segment; the first is the keyframe.
        keyframe_pool_stride: the keyframe's patch grid is pooled bilinearly to ceil(grid / stride).
        fast_path: "perceiver" (learned TimePerceiver), "avgpool" (spatio-temporal average pooling to
            the perceiver grid, no learned parameters) or "none" (keyframes only).
        perceiver_grid: the TimePerceiver's latent grid side (7 -> 49 tokens per segment).
        perceiver_depth: number of perceiver layers (cross-attention + self-attention + MLP).
        perceiver_heads: attention heads of the perceiver (must divide the vision width).
        perceiver_mlp_ratio: MLP width of the perceiver, as a multiple of the vision width.
        segment_timestamps: prefix each segment's tokens with its start time as text ("[12.0s]").
        vision_feature_layer: which SigLIP hidden state feeds both paths (-1: the last layer).
        vision_feature_mean, vision_feature_std: a fixed per-channel standardisation of the SigLIP
            features, (x - mean) / std, before both paths (None: features used as they are, as a
            pretrained SigLIP gives them). For vision towers whose channels carry large offsets
            shared by every patch, which would hide the content from the projector and the
            TimePerceiver alike.
        projector_hidden_act: activation of the 2-layer MLP projector.
        multimodal_projector_bias: whether the projector's linear layers have biases.
    """

    model_type = "clapper"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="siglip_vision_model", init_kwargs=tokens.SIGLIP_SO400M
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    video_token_id: int = 151647
    segment_size: int = tokens.SEGMENT_SIZE
    keyframe_pool_stride: int = tokens.KEYFRAME_POOL_STRIDE
    fast_path: Literal["perceiver", "avgpool", "none"] = tokens.FAST_PATH
    perceiver_grid: int = tokens.PERCEIVER_GRID
    perceiver_depth: int = 2
    perceiver_heads: int = 16
    perceiver_mlp_ratio: int = 2
    segment_timestamps: bool = True
    vision_feature_layer: int = -1
    vision_feature_mean: list[float] | None = None
    vision_feature_std: list[float] | None = None
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Qwen2 checkpoints keep tie_word_embeddings in the text config (0.5B ties them).
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True

    def validate_architecture(self):
        """Part of `@strict` validation: the values every component relies on."""
        if self.fast_path not in FAST_PATHS:
            raise ValueError(f"fast_path={self.fast_path!r} is not one of {FAST_PATHS}")
        for name in ("segment_size", "keyframe_pool_stride", "perceiver_grid", "perceiver_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        width = self.vision_config.hidden_size
        if width % self.perceiver_heads:
            raise ValueError(
                f"perceiver_heads={self.perceiver_heads} must divide the vision width {width}"
            )
        mean, std = self.vision_feature_mean, self.vision_feature_std
        if (mean is None) != (std is None):
            raise ValueError("vision_feature_mean and vision_feature_std go together: set both or neither")
        if mean is not None:
            if len(mean) != width or len(std) != width:
                raise ValueError(
                    f"vision_feature_mean/std have {len(mean)}/{len(std)} values; the vision width is {width}"
                )
            if min(std) <= 0:
                raise ValueError("vision_feature_std must be positive in every channel")

    # --- token geometry (derived, never stored) --------------------------------------

    @property
    def patch_grid(self) -> int:
        """Side of SigLIP's patch grid (384 / 14 -> 27)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    @property
    def keyframe_grid(self) -> int:
        """Side of the pooled keyframe grid (27 -> 14, 28 -> 14), as LLaVA-OneVision pools."""
        v = self.vision_config
        return tokens.keyframe_grid(v.image_size, v.patch_size, self.keyframe_pool_stride)

    @property
    def token_costs(self) -> TokenCosts:
        """Visual tokens per segment (keyframe, fast path) and the most frames per segment."""
        return TokenCosts(
            keyframe=self.keyframe_grid**2,
            fast=tokens.fast_tokens(self.fast_path, self.perceiver_grid),
            segment_size=self.segment_size,
        )

    @property
    def keyframe_tokens(self) -> int:
        return self.token_costs.keyframe

    @property
    def fast_tokens(self) -> int:
        """Temporal tokens of a segment with at least 2 frames (0 when the fast path is off)."""
        return self.token_costs.fast


def visual_token_count(config: ClapperConfig, frames_per_segment: Iterable[int] | int) -> int:
    """Visual tokens of a video, given its segments' frame counts or its total number of frames."""
    return config.token_costs.count(frames_per_segment)


__all__ = ["FAST_PATHS", "ClapperConfig", "split_segments", "visual_token_count"]


def _register() -> None:
    """Make `AutoConfig` resolve model_type "clapper" (the model classes register in modeling_clapper)."""
    try:
        AutoConfig.register("clapper", ClapperConfig)
    except ValueError:  # already registered
        pass


_register()
