"""Frame extraction: reach each sampled time, decode, and convert only the frames that are kept.

`load_clip` samples a file by the plan from `sampling.py` (the container is opened and probed by
`container.py`; what counts as damage is decided in `damage.py`) and returns a `Clip`.

Two ways to reach a target time t:
- exact: the frame shown at t (the last one with pts <= t). When targets are far apart
  (more than a keyframe interval) each is reached by seeking to the keyframe before it;
  when they are dense the stream is decoded straight through, without seeking.
- snap:  the keyframe nearest to t; one frame is decoded per target.
Frames that are not kept are never converted; kept ones are converted to RGB and scaled
down in one swscale call, so memory is bounded by the frames kept, not the video's length.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from clapper_core.errors import EmptyVideoError
from clapper_core.video.clip import Clip, VideoInfo
from clapper_core.video.container import (
    INDEXED_FORMATS,
    frame_time,
    open_container,
    prepare_stream,
    probe_video,
)
from clapper_core.video.damage import Damage, FrameCheck, judge
from clapper_core.video.sampling import SamplingConfig, make_segments, plan_sampling

__all__ = ["load_clip", "to_rgb"]

_DEFAULT_KEYFRAME_INTERVAL = 10.0  # seconds, x264's default, when a file does not tell
_MAX_CONSECUTIVE_ERRORS = 64
_EPS = 1e-9  # seconds: a frame this close after a target still counts as shown at it


@dataclass
class _Decoded:
    frames: np.ndarray | None = None  # (T, H, W, 3)
    times: list[float] = field(default_factory=list)  # absolute presentation times
    decoded: int = 0  # frames that came out of the decoder
    damage: Damage = field(default_factory=Damage)


class _Source:
    """Frames of one stream, from wherever the last seek left the demuxer."""

    def __init__(self, container, stream, info: VideoInfo, max_short_side: int | None, capacity: int):
        self.container, self.stream, self.info = container, stream, info
        self.max_short_side = max_short_side
        self.capacity = capacity
        self.buffer: np.ndarray | None = None
        self.out = _Decoded()
        # Keyframes the container's index lists: one that is skipped over while decoding
        # straight through means the demuxer lost a stretch of the file.
        indexed = container.format.name.startswith(INDEXED_FORMATS)
        self.index_keys = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe) if indexed else []

    def seek(self, t: float) -> None:
        offset = math.floor(max(t, 0.0) / float(self.stream.time_base)) if t > self.info.start_time else 0
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.error.FFmpegError:
            self.container.seek(0, stream=self.stream, backward=True)

    def packets(self) -> Iterator:
        """Packets from the current position; a read error is counted and reading goes on."""
        consecutive = 0
        while consecutive < _MAX_CONSECUTIVE_ERRORS:
            try:
                for packet in self.container.demux(self.stream):
                    consecutive = 0
                    yield packet
                return
            except av.error.EOFError:
                return
            except av.error.FFmpegError:
                self.out.damage.errors += 1
                consecutive += 1

    def frames(self) -> Iterator:
        """Decoded frames in presentation order, with known times; damaged ones are counted, not given."""
        check = FrameCheck(self.out.damage, self.index_keys)
        last = None
        for packet in self.packets():
            check.packet_in(packet)
            try:
                frames = self.stream.decode(packet)
            except av.error.FFmpegError:
                check.decode_failed()
                continue
            for frame in frames:
                self.out.decoded += 1
                if not check.trusted(frame):
                    continue
                t = frame_time(frame, self.stream.time_base)
                if t is None:  # no pts: one frame period after the previous
                    t = (last if last is not None else self.info.start_time) + 1.0 / self.info.native_fps
                last = t
                yield frame, t

    def first_frame(self):
        """The first frame after a seek, decoding as little as possible (one frame for a keyframe)."""
        ctx = self.stream.codec_context
        damage = self.out.damage
        before = damage.errors + damage.corrupt
        for packet in self.packets():
            try:
                frames = self.stream.decode(packet)
                if not frames and packet.size:
                    frames = ctx.decode(None)  # drain: frame threading holds the frame back
                    ctx.flush_buffers()
            except av.error.FFmpegError:
                damage.errors += 1
                ctx.flush_buffers()
                continue
            frames = [f for f in frames if not f.is_corrupt] or self._count_corrupt(frames)
            if frames:
                self.out.decoded += len(frames)
                frame = frames[0]
                t = frame_time(frame, self.stream.time_base)
                if not frame.key_frame and damage.errors + damage.corrupt > before:
                    return None, None  # decoded from a damaged keyframe: not trustworthy
                return frame, (t if t is not None else self.info.start_time)
        return None, None

    def _count_corrupt(self, frames: list) -> list:
        self.out.damage.corrupt += len(frames)
        self.out.decoded += len(frames)
        return []

    def keep(self, frame, t: float) -> None:
        rgb = to_rgb(frame, self.info.rotation, self.max_short_side)
        if self.buffer is None:  # one array for all kept frames: no second copy when stacking
            self.buffer = np.empty((self.capacity, *rgb.shape), np.uint8)  # (T, H, W, 3)
        if rgb.shape != self.buffer.shape[1:]:  # the stream changed size mid-way
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize(self.buffer.shape[2:0:-1], Image.Resampling.BILINEAR))
        self.buffer[len(self.out.times)] = rgb
        self.out.times.append(t)


def to_rgb(frame, rotation: int, max_short_side: int | None) -> np.ndarray:
    """One decoded frame as (H, W, 3) uint8 RGB, upright, shorter side at most max_short_side."""
    w, h = frame.width, frame.height
    scale = 1.0 if max_short_side is None else min(1.0, max_short_side / min(w, h))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    kwargs = {}
    if int(frame.color_range or 0) in (1, 2):  # PyAV assumes limited range unless told
        kwargs["src_color_range"] = int(frame.color_range)
    rgb = frame.reformat(
        width=tw, height=th, format="rgb24", interpolation="AREA" if scale < 1.0 else "BILINEAR",
        dst_color_range="JPEG", **kwargs,
    ).to_ndarray()  # (H, W, 3)
    if rotation:
        rgb = np.rot90(rgb, k=-(rotation // 90))  # rot90 turns counter-clockwise; rotation is clockwise
    return np.ascontiguousarray(rgb)


def _scan_to(frames: Iterator, target: float, prev, pending):
    """Decode on from `pending` (or the next frame) past `target`.

    Returns (the last frame shown at or before `target` or `prev`, the first frame after it or
    None, whether the stream ended).
    """
    item = pending if pending is not None else next(frames, None)
    while item is not None and item[1] <= target + _EPS:
        prev, item = item, next(frames, None)
    return prev, item, item is None


def _decode_exact(src: _Source, targets: list[float], spacing: float) -> None:
    info, damage = src.info, src.out.damage
    gap = info.keyframe_interval or _DEFAULT_KEYFRAME_INTERVAL
    frames = None
    pending = None  # decoded, shown after the current target
    prev = None  # (frame, t): last decoded frame shown at or before the current target
    limit = max(spacing, 2.0 / info.native_fps)  # farther than this from its target, a frame is not it
    for target in targets:
        current = pending if pending is not None else prev
        if frames is None or current is None or target - current[1] > gap:
            frames, prev, pending = _seek_before(src, target, gap)
        prev, pending, ended = _scan_to(frames, target, prev, pending)
        chosen = prev if prev is not None else pending
        if chosen is not None and ended and target - chosen[1] > limit:
            damage.truncated = True
        if chosen is None or (damage.damaged and abs(chosen[1] - target) > limit):
            damage.missing.append(target)  # a damaged stretch: nothing decodes near this target
            continue
        src.keep(*chosen)


def _seek_before(src: _Source, target: float, gap: float):
    """Seek so that the first decoded frame is at or before `target`; returns (frames, prev, pending)."""
    start = src.info.start_time
    for back in (0.0, gap, 4 * gap, math.inf):  # some demuxers land after the target; step back
        at = target - back
        src.seek(at if math.isfinite(at) else start)
        frames = src.frames()
        first = next(frames, None)
        if first is None or first[1] <= target + _EPS or first[1] <= start + 1e-6 or not math.isfinite(at):
            return frames, None, first
    raise AssertionError("unreachable")


def _decode_snap(src: _Source, targets: list[float], spacing: float) -> None:
    gap = src.info.keyframe_interval or _DEFAULT_KEYFRAME_INTERVAL
    end = src.info.start_time + src.info.duration
    last_t = -math.inf
    for target in targets:
        src.seek(min(target + gap / 2, end))  # lands on the keyframe nearest the target
        frame, t = src.first_frame()
        if frame is None or t <= last_t + _EPS or abs(t - target) > max(gap, spacing):
            # the nearest keyframe is taken already (or there is none): fall back to exact
            frames, prev, pending = _seek_before(src, target, gap)
            prev, pending, _ = _scan_to(frames, target, prev, pending)
            chosen = prev if prev is not None else pending
            if chosen is None or chosen[1] <= last_t + _EPS:
                src.out.damage.missing.append(target)
                continue
            frame, t = chosen
        src.keep(frame, t)
        last_t = t


def _decode_video(info: VideoInfo, plan, config: SamplingConfig, threads: int) -> _Decoded:
    p = Path(info.path)
    with open_container(p) as container:
        stream = container.streams[info.stream_index]
        prepare_stream(p, stream, threads)
        src = _Source(container, stream, info, config.max_short_side, len(plan.timestamps))
        targets = [info.start_time + t for t in plan.timestamps]
        spacing = info.duration / max(1, len(targets))
        if plan.seek == "snap":
            _decode_snap(src, targets, spacing)
        else:
            _decode_exact(src, targets, spacing)
        if src.buffer is not None:
            src.out.frames = src.buffer[: len(src.out.times)]
        return src.out


def _load_image(info: VideoInfo, config: SamplingConfig) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(info.path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if config.max_short_side is not None and min(im.size) > config.max_short_side:
            scale = config.max_short_side / min(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX)
        return np.array(im, dtype=np.uint8)[None]  # (1, H, W, 3); a copy, writable like decoded video frames


def load_clip(path: str | os.PathLike, config: SamplingConfig = SamplingConfig(), *, threads: int = 0) -> Clip:
    """Sample `path` by `config`: frames (T, H, W, 3) uint8 RGB upright, with their times. `threads`: FFmpeg's
    decoding threads, 0 for its own choice, 1 for none (see `container.prepare_stream`); the frames are the same."""
    info = probe_video(path, threads=threads)
    plan = plan_sampling(info, config)
    if info.kind == "image":
        frames = _load_image(info, config)
        return Clip(info.path, frames, (0.0,), 0.0, 0.0, 0.0, plan.segments, (), info, "exact", 1)
    out = _decode_video(info, plan, config, threads)
    warnings = list(plan.warnings)
    damaged = judge(info.path, out.damage, len(out.times), plan.num_frames)
    warnings += [damaged] if damaged else []
    if not out.times:
        raise EmptyVideoError(f"{info.path}: no frame decodes at the sampled times; the file may be truncated")
    times = tuple(max(0.0, t - info.start_time) for t in out.times)
    frames = out.frames
    segments = make_segments(times, info.duration, config.segment_size)
    sample_fps = len(times) / info.duration if info.duration > 0 else 0.0
    return Clip(
        path=info.path,
        frames=frames,
        timestamps=times,
        duration=info.duration,
        native_fps=info.native_fps,
        sample_fps=sample_fps,
        segments=segments,
        warnings=tuple(warnings),
        info=info,
        seek=plan.seek,
        decoded_frames=out.decoded,
    )
