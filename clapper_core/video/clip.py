"""Typed results of the video layer: what a file is (`VideoInfo`), what will be sampled
(`SamplingPlan`, `Segment`) and what was decoded (`Clip`).

Nothing here imports PyAV or torch; `Clip.to_tensor` imports torch when it is called.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What a video (or image) file holds, read from its header and first frame."""

    path: str
    kind: str  # "video" or "image"
    container: str  # FFmpeg demuxer name ("mov,mp4,m4a,3gp,3g2,mj2"), or the image format
    codec: str
    width: int  # display size: after rotation
    height: int
    rotation: int  # clockwise degrees applied to decoded frames to show them upright: 0/90/180/270
    duration: float  # seconds
    native_fps: float  # average frame rate; 0.0 for an image
    num_frames: int  # from the container when it says, else duration x fps
    num_frames_exact: bool
    start_time: float  # presentation time of the first frame in the stream, seconds
    stream_index: int  # the video stream used
    video_streams: int  # how many video streams the file has
    has_audio: bool
    pix_fmt: str
    bit_depth: int
    color_range: str  # "tv" (limited), "pc" (full) or "unknown"
    keyframe_interval: float | None  # typical seconds between keyframes; None when unknown
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """Consecutive sampled frames [start, stop) that the model reads as one slow-fast unit.

    The first frame is the keyframe (full token grid); when the segment has 2+ frames they
    all feed the TimePerceiver (the fast path). start_time/end_time bound the stretch of
    video the segment stands for, in seconds from the start of the video.
    """

    index: int
    start: int
    stop: int
    start_time: float
    end_time: float

    def __post_init__(self) -> None:
        assert 0 <= self.start < self.stop, (self.start, self.stop)
        assert self.start_time <= self.end_time, (self.start_time, self.end_time)

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def keyframe(self) -> int:
        return self.start

    @property
    def has_fast_path(self) -> bool:
        return self.num_frames >= 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "stop": self.stop,
            "start_time": round(self.start_time, 6),
            "end_time": round(self.end_time, 6),
            "num_frames": self.num_frames,
            "has_fast_path": self.has_fast_path,
        }


@dataclass(frozen=True)
class SamplingPlan:
    """Which moments of a video will be sampled, and how they group into segments.

    `timestamps` are target times in seconds from the start of the video. `seek` is the
    resolved decoding strategy: "exact" (the frame shown at each target) or "snap" (the
    nearest keyframe).
    """

    timestamps: tuple[float, ...]
    segments: tuple[Segment, ...]
    duration: float
    sample_fps: float
    mode: str  # "fps", "capped" (fps x duration exceeded max_frames), "num_frames" or "image"
    seek: str
    warnings: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return len(self.timestamps)

    @property
    def segment_sizes(self) -> tuple[int, ...]:
        """Frames per segment, in order: what a model's `TokenCosts.count` prices."""
        return tuple(s.num_frames for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_frames": self.num_frames,
            "mode": self.mode,
            "seek": self.seek,
            "sample_fps": round(self.sample_fps, 6),
            "timestamps": [round(t, 6) for t in self.timestamps],
            "segments": [s.to_dict() for s in self.segments],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, eq=False)
class Clip:
    """Sampled frames of one video, ready for the model.

    frames: (T, H, W, 3) uint8 RGB in display orientation; timestamps: presentation time of
    each frame in seconds from the start of the video; sample_fps: frames kept per second of
    video; warnings: what went wrong but did not stop decoding (a damaged stretch, say).
    """

    path: str
    frames: np.ndarray
    timestamps: tuple[float, ...]
    duration: float
    native_fps: float
    sample_fps: float
    segments: tuple[Segment, ...]
    warnings: tuple[str, ...]
    info: VideoInfo
    seek: str = "exact"
    decoded_frames: int = field(default=0, compare=False)  # frames the decoder produced to get these

    def __post_init__(self) -> None:
        assert self.frames.dtype == np.uint8 and self.frames.ndim == 4 and self.frames.shape[-1] == 3
        assert len(self.timestamps) == self.frames.shape[0] >= 1
        assert self.segments and self.segments[-1].stop == self.frames.shape[0]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def segment_sizes(self) -> tuple[int, ...]:
        """Frames per segment, in order: what a model's `TokenCosts.count` prices."""
        return tuple(s.num_frames for s in self.segments)

    def without_pixels(self) -> "Clip":
        """The same clip with its pixels dropped (frames become (T, 0, 0, 3)): what a record needs about it once the
        model has its own copy of the frames, holding none of their memory."""
        return replace(self, frames=np.empty((self.num_frames, 0, 0, 3), np.uint8))

    def to_tensor(self):
        """The frames as a torch.uint8 tensor (T, 3, H, W)."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.frames)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pixels, for JSON."""
        return {
            "path": self.path,
            "num_frames": self.num_frames,
            "frame_size": [int(self.frames.shape[2]), int(self.frames.shape[1])],
            "duration": round(self.duration, 6),
            "native_fps": round(self.native_fps, 6),
            "sample_fps": round(self.sample_fps, 6),
            "seek": self.seek,
            "timestamps": [round(t, 6) for t in self.timestamps],
            "segments": [s.to_dict() for s in self.segments],
            "warnings": list(self.warnings),
        }
