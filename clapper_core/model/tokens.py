"""How many visual tokens a video costs: counted here, once, from a model's config alone.

A video is cut into segments of up to `segment_size` frames. Each segment costs its keyframe's
patch grid pooled by `keyframe_pool_stride` (`keyframe` tokens) plus, when it has 2+ frames and the
fast path is on, `perceiver_grid ** 2` temporal tokens (`fast`).

Pure Python over a `config.json` dict (Clapper's own, or a LLaVA-OneVision checkpoint's): no torch,
no transformers. The processor, the model's check, `clapper probe`, the eval budget and the records
all count through `TokenCosts`, so what `probe` reports is what `ask` spends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clapper_core.defaults import SEGMENT_SIZE

# ClapperConfig's layout defaults (configuration_clapper reads them from here).
KEYFRAME_POOL_STRIDE = 2
FAST_PATH = "perceiver"
PERCEIVER_GRID = 7

# SigLIP-so400m-384 as LLaVA-OneVision uses it (its last layer dropped, no pooling head): the vision
# tower of a config that names none.
SIGLIP_SO400M = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "patch_size": 14,
    "image_size": 384,
    "num_hidden_layers": 26,
    "num_attention_heads": 16,
    "vision_use_head": False,
}
# transformers' SiglipVisionConfig defaults, for a vision_config that leaves these keys out.
_SIGLIP_IMAGE_SIZE, _SIGLIP_PATCH_SIZE = 224, 16


def keyframe_grid(image_size: int, patch_size: int, pool_stride: int) -> int:
    """Side of a keyframe's token grid: SigLIP's patch grid (384 / 14 -> 27) pooled to ceil(grid / stride)."""
    return math.ceil((image_size // patch_size) / pool_stride)


def fast_tokens(fast_path: str, perceiver_grid: int) -> int:
    """Temporal tokens a segment of 2+ frames adds (0 when the fast path is off)."""
    return 0 if fast_path == "none" else perceiver_grid**2


def split_segments(num_frames: int, segment_size: int) -> list[int]:
    """Frame counts of consecutive segments: 10 frames by 4 -> [4, 4, 2]."""
    assert num_frames >= 0 and segment_size >= 1
    full, rest = divmod(num_frames, segment_size)
    return [segment_size] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class TokenCosts:
    """Per-segment visual-token costs of one model."""

    keyframe: int  # tokens of each segment's first frame
    fast: int  # added by a segment of 2+ frames
    segment_size: int  # the most frames the model takes in one segment

    def segment(self, num_frames: int) -> int:
        """Visual tokens of one segment of `num_frames` frames."""
        assert 1 <= num_frames, f"segment of {num_frames} frames"
        return self.keyframe + (self.fast if num_frames >= 2 else 0)

    def count(self, frames_per_segment: Iterable[int] | int) -> int:
        """Visual tokens of a video, given its segments' frame counts or its total number of frames.

        An int means that many frames cut into consecutive segments of `segment_size`.
        """
        if isinstance(frames_per_segment, int):
            frames_per_segment = split_segments(frames_per_segment, self.segment_size)
        return sum(self.segment(n) for n in frames_per_segment)

    def to_dict(self) -> dict[str, int]:
        return {"keyframe_tokens": self.keyframe, "fast_tokens": self.fast, "segment_size": self.segment_size}


def token_costs(config: Mapping[str, Any]) -> TokenCosts:
    """The costs of a model from its `config.json` (model_type "clapper" or "llava_onevision").

    A LLaVA-OneVision checkpoint loads with Clapper's default layout on top of its vision tower,
    so only its vision config is read.
    """
    layout = config if config.get("model_type", "clapper") == "clapper" else {}
    vision = config.get("vision_config") or SIGLIP_SO400M
    return TokenCosts(
        keyframe=keyframe_grid(
            vision.get("image_size", _SIGLIP_IMAGE_SIZE),
            vision.get("patch_size", _SIGLIP_PATCH_SIZE),
            layout.get("keyframe_pool_stride", KEYFRAME_POOL_STRIDE),
        )
        ** 2,
        fast=fast_tokens(layout.get("fast_path", FAST_PATH), layout.get("perceiver_grid", PERCEIVER_GRID)),
        segment_size=layout.get("segment_size", SEGMENT_SIZE),
    )


# The full-size Clapper (SigLIP-so400m-384, 7x7 perceiver): 196 + 49 tokens per 4-frame segment.
DEFAULT_COSTS = token_costs({"model_type": "clapper"})
