"""Sampling math: which moments of a video to keep and how they group into segments.

Pure functions over `VideoInfo` and `SamplingConfig`: no PyAV, no decoding. Targets are
times (seconds), never frame indices, so variable-frame-rate video samples correctly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from clapper_core import defaults
from clapper_core.defaults import SEEKS
from clapper_core.errors import ConfigError
from clapper_core.video.clip import SamplingPlan, Segment, VideoInfo

# "auto" snaps to keyframes when targets are at least this many keyframe intervals apart:
# a snapped frame is then at most 1/4 of the target spacing away from its target.
SNAP_MIN_INTERVALS = 2.0


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample frames from a video.

    fps:            frames per second of video (default 1) ...
    max_frames:     ... but never more than this: past it, max_frames spread over the whole video.
    num_frames:     a fixed frame count spread uniformly instead (overrides fps and max_frames).
    segment_size:   frames per slow-fast segment; the first of each is the keyframe.
    seek:           "exact" = the frame shown at each target time; "snap" = the nearest keyframe
                    (decodes one frame per target); "auto" = snap only when targets are at least
                    two keyframe intervals apart, so short clips stay exact.
    max_short_side: frames whose shorter side is larger are scaled down to it while decoding
                    (None keeps native size). The model resizes to 384 anyway; this bounds memory.
    """

    fps: float = defaults.FPS
    max_frames: int = defaults.MAX_FRAMES
    num_frames: int | None = None
    segment_size: int = defaults.SEGMENT_SIZE
    seek: str = defaults.SEEK
    max_short_side: int | None = defaults.MAX_SHORT_SIDE

    def __post_init__(self) -> None:
        if (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                or not math.isfinite(self.fps) or self.fps <= 0):
            raise ConfigError(f"fps must be a positive number of frames per second, got {self.fps!r}; try fps=1.0")
        _check_count("max_frames", self.max_frames, "try max_frames=96")
        if self.num_frames is not None:
            _check_count("num_frames", self.num_frames, "leave it unset to sample by fps")
        _check_count("segment_size", self.segment_size, "try segment_size=4")
        if self.seek not in SEEKS:
            raise ConfigError(f"seek must be one of {', '.join(SEEKS)}, got {self.seek!r}")
        if self.max_short_side is not None:
            _check_count("max_short_side", self.max_short_side, "or None to keep the native size")
            if self.max_short_side < 16:
                raise ConfigError(f"max_short_side must be at least 16 pixels, got {self.max_short_side}")


def _check_count(name: str, value: object, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}; {fix}")


def frame_count(duration: float, config: SamplingConfig) -> tuple[int, str]:
    """How many frames to sample from `duration` seconds, and the mode that decided it."""
    if config.num_frames is not None:
        return config.num_frames, "num_frames"
    wanted = duration * config.fps
    if wanted > config.max_frames:
        return config.max_frames, "capped"
    n = max(1, math.floor(wanted + 0.5))
    seg = config.segment_size
    if n > seg:  # counts that segment cleanly: round to the nearest multiple of segment_size
        n = seg * math.floor(n / seg + 0.5)
    return min(n, config.max_frames), "fps"


def uniform_timestamps(duration: float, n: int) -> tuple[float, ...]:
    """Centres of n equal slices of [0, duration): never the very start or end of a video."""
    assert n >= 1 and duration >= 0
    step = duration / n
    return tuple((i + 0.5) * step for i in range(n))


def make_segments(timestamps: tuple[float, ...], duration: float, segment_size: int) -> tuple[Segment, ...]:
    """Cut frames into consecutive segments of `segment_size` (the last may be shorter).

    A segment spans from halfway after the previous frame to halfway before the next
    frame (0 and `duration` at the ends), so the segments tile the whole video.
    """
    n = len(timestamps)
    assert n >= 1 and segment_size >= 1
    edges = [0.0] + [(a + b) / 2 for a, b in zip(timestamps, timestamps[1:])] + [max(duration, timestamps[-1])]
    segments = []
    for index, start in enumerate(range(0, n, segment_size)):
        stop = min(start + segment_size, n)
        segments.append(Segment(index, start, stop, edges[start], max(edges[start], edges[stop])))
    return tuple(segments)


def resolve_seek(info: VideoInfo, config: SamplingConfig, n: int) -> str:
    """'exact' or 'snap' for this video and frame count (see SamplingConfig.seek)."""
    if config.seek != "auto":
        return config.seek
    g = info.keyframe_interval
    if info.kind != "video" or n < 2 or not g or g >= info.duration:
        return "exact"
    return "snap" if info.duration / n >= SNAP_MIN_INTERVALS * g else "exact"


def plan_sampling(info: VideoInfo, config: SamplingConfig = SamplingConfig()) -> SamplingPlan:
    """Target times and segments for `info` under `config`; pure, nothing is decoded."""
    if info.kind == "image":
        return SamplingPlan((0.0,), make_segments((0.0,), 0.0, config.segment_size), 0.0, 0.0, "image", "exact")
    n, mode = frame_count(info.duration, config)
    warnings = []
    available = max(1, info.num_frames)
    if n > available:
        warnings.append(f"the video has only {available} frame(s); sampling {available} instead of {n}")
        n = available
    timestamps = uniform_timestamps(info.duration, n)
    sample_fps = n / info.duration if info.duration > 0 else 0.0
    segments = make_segments(timestamps, info.duration, config.segment_size)
    seek = resolve_seek(info, config, n)
    return SamplingPlan(timestamps, segments, info.duration, sample_fps, mode, seek, tuple(warnings))
