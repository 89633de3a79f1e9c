"""The video layer: sampling math (no PyAV) -> a thin PyAV decoder -> a typed `Clip`.

No torch at import: `Clip.to_tensor` imports it when called, so `clapper probe` stays light.
"""

from __future__ import annotations

from clapper_core.video.clip import Clip, SamplingPlan, Segment, VideoInfo
from clapper_core.video.container import IMAGE_SUFFIXES, probe_video
from clapper_core.video.decode import load_clip
from clapper_core.video.probe import ProbeReport, inspect_video
from clapper_core.video.sampling import SamplingConfig, make_segments, plan_sampling

__all__ = [
    "IMAGE_SUFFIXES",
    "Clip",
    "ProbeReport",
    "SamplingConfig",
    "SamplingPlan",
    "Segment",
    "VideoInfo",
    "inspect_video",
    "load_clip",
    "make_segments",
    "plan_sampling",
    "probe_video",
]
