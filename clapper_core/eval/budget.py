"""The evaluation protocol's visual-token budget: the most frames whose tokens fit.

Models are compared at a fixed upper bound on visual tokens per video. With Clapper's
slow-fast layout a 4-frame segment costs 196 keyframe tokens + 49 TimePerceiver tokens =
245, so 6,000 tokens buy 24 segments = 96 frames (5,880 tokens) and 1,500 buy 6 segments =
24 frames. The count comes from the loaded model's config (`ClapperConfig.token_costs`), so a
model with another layout gets its own answer.
"""

from __future__ import annotations

from collections.abc import Callable

from clapper_core.errors import ConfigError

# Far beyond any video a model sees at once; bounds the search.
MAX_FRAMES = 100_000


def frames_for_budget(max_visual_tokens: int, tokens_for: Callable[[int], int]) -> int:
    """The largest frame count n with tokens_for(n) <= max_visual_tokens.

    `tokens_for` must be non-decreasing in n (a frame never makes a video cheaper).
    """
    if isinstance(max_visual_tokens, bool) or not isinstance(max_visual_tokens, int) or max_visual_tokens < 1:
        raise ConfigError(f"--max-visual-tokens must be a whole number >= 1, got {max_visual_tokens!r}; try 6000.")
    one = tokens_for(1)
    if one > max_visual_tokens:
        raise ConfigError(
            f"--max-visual-tokens {max_visual_tokens} is below the {one} tokens of a single frame: "
            f"use at least {one}."
        )
    lo, hi = 1, 2  # tokens_for(lo) fits; grow hi until it does not
    while hi <= MAX_FRAMES and tokens_for(hi) <= max_visual_tokens:
        lo, hi = hi, hi * 2
    hi = min(hi, MAX_FRAMES + 1)
    while hi - lo > 1:  # invariant: lo fits, hi does not (or is past MAX_FRAMES)
        mid = (lo + hi) // 2
        if tokens_for(mid) <= max_visual_tokens:
            lo = mid
        else:
            hi = mid
    return lo


def model_frames_for_budget(config, max_visual_tokens: int) -> int:
    """`frames_for_budget` for a `ClapperConfig` (the loaded model's `model.config`)."""
    return frames_for_budget(max_visual_tokens, config.token_costs.count)


def model_visual_tokens(config, num_frames: int) -> int:
    """Visual tokens a `num_frames`-frame video costs with this model config."""
    return config.token_costs.count(num_frames)
