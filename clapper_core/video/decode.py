"""A thin PyAV decoder: open, pick the video stream, seek, decode, convert only what is kept.

`probe_video` reads a file's header (and its first frame, for the display rotation);
`load_clip` samples frames by the plan from `sampling.py` and returns a `Clip`.

Two ways to reach a target time t:
- exact: the frame shown at t (the last one with pts <= t). When targets are far apart
  (more than a keyframe interval) each is reached by seeking to the keyframe before it;
  when they are dense the stream is decoded straight through, without seeking.
- snap:  the keyframe nearest to t; one frame is decoded per target.
Frames that are not kept are never converted; kept ones are converted to RGB and scaled
down in one swscale call, so memory is bounded by the frames kept, not the video's length.
"""

from __future__ import annotations

import bisect
import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from clapper_core.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    NotAVideoError,
    UnsupportedCodecError,
    VideoNotFoundError,
)
from clapper_core.video.clip import Clip, VideoInfo
from clapper_core.video.sampling import SamplingConfig, make_segments, plan_sampling

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
_IMAGE_DEMUXERS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif_pipe"}
# Containers FFmpeg will open that are not pictures at all (text rendered as video, say).
_NON_VIDEO_DEMUXERS = {"tty", "lavfi"}
_DEFAULT_KEYFRAME_INTERVAL = 10.0  # seconds, x264's default, when a file does not tell
_MAX_CONSECUTIVE_ERRORS = 64


# --- opening and probing ---------------------------------------------------------------


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise VideoNotFoundError(f"{p}: is a directory, not a video file; pass a file inside it")
    if p.stat().st_size == 0:
        raise EmptyVideoError(f"{p}: is empty (0 bytes)")
    return p


def _open(p: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(p), mode="r")
    except av.error.PermissionError as exc:
        raise NotAVideoError(f"{p}: cannot be read (permission denied)") from exc
    except av.error.EOFError as exc:
        raise EmptyVideoError(
            f"{p}: ends before any video data ({p.stat().st_size} bytes); it is empty or cut short"
        ) from exc
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise NotAVideoError(f"{p}: not a video or image FFmpeg can read ({reason})") from exc
    if container.format.name in _NON_VIDEO_DEMUXERS:
        container.close()
        raise NotAVideoError(f"{p}: not a video or image (FFmpeg reads it as {container.format.name!r})")
    return container


def _pick_stream(p: Path, container) -> av.video.stream.VideoStream:
    """The default video stream: flagged default, then FFmpeg's best; never cover art."""
    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NoVideoStreamError(f"{p}: has no video stream (only {', '.join(kinds)}); pass a video file")
    flagged = [s for s in videos if s.disposition & av.stream.Disposition.default]
    candidates = flagged or videos
    if len(candidates) == 1:
        return candidates[0]
    try:
        best = container.streams.best("video")
    except av.error.FFmpegError:
        best = None
    return best if best in candidates else candidates[0]


def _prepare(p: Path, stream) -> None:
    if stream.codec_context is None:
        name = getattr(stream.codec, "name", None) or "unknown"
        raise UnsupportedCodecError(
            f"{p}: this FFmpeg build has no decoder for its {name} video; re-encode it (H.264, say)"
        )
    stream.thread_type = "AUTO"


def _seconds(value, time_base) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _frame_time(frame, time_base=None) -> float | None:
    """Presentation time in seconds; frames drained from the codec carry no time base of their own."""
    time_base = frame.time_base or time_base
    return None if frame.pts is None or time_base is None else float(frame.pts * time_base)


def _display_rotation(frame) -> int:
    """Clockwise degrees (0/90/180/270) that turn a decoded frame upright."""
    try:
        ccw = frame.rotation  # counter-clockwise, from the display matrix
    except (AttributeError, ValueError):
        return 0
    if not ccw or not math.isfinite(ccw):
        return 0
    return int(round(-ccw / 90.0)) % 4 * 90


def _bit_depth(pix_fmt: str) -> int:
    for depth in (16, 14, 12, 10, 9):
        if f"p{depth}" in pix_fmt or f"{depth}le" in pix_fmt or f"{depth}be" in pix_fmt:
            return depth
    return 8


def _color_range(frame) -> str:
    fmt = frame.format.name
    value = int(frame.color_range or 0)
    if fmt.startswith("yuvj") or value == 2:
        return "pc"
    if value == 1:
        return "tv"
    return "unknown"


def _keyframe_interval(container, stream, duration: float) -> float | None:
    """Typical seconds between keyframes: from the container's index, or a short demux."""
    tb = stream.time_base
    keys: list[float] = []
    # Only MP4/MOV and Matroska carry a real index; others (MPEG-PS) build one while reading.
    indexed = container.format.name.startswith(("mov", "matroska"))
    for entry in stream.index_entries if indexed else ():
        if entry.is_keyframe:
            keys.append(float(entry.timestamp * tb))
            if len(keys) >= 32:
                break
    if len(keys) < 3:
        keys, reached_end = [], True
        container.seek(0, stream=stream, backward=True)
        for n, packet in enumerate(container.demux(stream)):
            if packet.size and packet.is_keyframe and packet.pts is not None:
                keys.append(float(packet.pts * tb))
            if len(keys) >= 4 or n >= 1500:
                reached_end = False
                break
        if len(keys) < 2:
            return duration if reached_end and duration > 0 else None
    gaps = sorted(b - a for a, b in zip(keys, keys[1:]) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


def _first_frame(stream, packets) -> tuple[object | None, int]:
    """Decode until one frame comes out; returns it and how many packets failed."""
    errors = 0
    for packet in packets:
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError:
            errors += 1
            continue
        if frames:
            return frames[0], errors
    return None, errors


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """What `path` holds: stream, size, duration, rate, rotation; decodes only the first frame."""
    p = _check_path(path)
    return _probe(p)


def _probe(p: Path) -> VideoInfo:
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _probe_image(p)
    with _open(p) as container:
        if container.format.name in _IMAGE_DEMUXERS:
            return _probe_image(p)
        stream = _pick_stream(p, container)
        _prepare(p, stream)
        try:
            first, _ = _first_frame(stream, container.demux(stream))
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"{p}: its video stream cannot be read ({exc})") from exc
        if first is None:
            raise EmptyVideoError(f"{p}: its video stream has no frame that decodes; the file is empty or broken")
        tb = stream.time_base
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0) or 25.0
        start = _frame_time(first)
        if start is None:
            start = _seconds(stream.start_time, tb) or 0.0
        duration = _seconds(stream.duration, tb)
        if not duration and container.duration:
            duration = container.duration / 1e6 - max(0.0, start - (container.start_time or 0) / 1e6)
        num_frames, exact = (stream.frames, True) if stream.frames > 0 else (0, False)
        if not duration or duration <= 0:
            duration = (num_frames or 1) / fps
        if not exact:
            num_frames = max(1, round(duration * fps))
        rotation = _display_rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=str(p),
            kind="video",
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            duration=float(duration),
            native_fps=fps,
            num_frames=int(num_frames),
            num_frames_exact=exact,
            start_time=float(start),
            stream_index=stream.index,
            video_streams=len(container.streams.video),
            has_audio=bool(container.streams.audio),
            pix_fmt=first.format.name,
            bit_depth=_bit_depth(first.format.name),
            color_range=_color_range(first),
            keyframe_interval=_keyframe_interval(container, stream, float(duration)),
            size_bytes=p.stat().st_size,
        )


def _probe_image(p: Path) -> VideoInfo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            width, height = im.size
            fmt = (im.format or p.suffix.lstrip(".")).lower()
            mode = im.mode
            exif_orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise NotAVideoError(f"{p}: not an image that can be read ({exc})") from exc
    rotation = {3: 180, 6: 90, 8: 270}.get(exif_orientation, 0)
    if exif_orientation in (5, 6, 7, 8):
        width, height = height, width
    return VideoInfo(
        path=str(p), kind="image", container=fmt, codec=fmt, width=width, height=height, rotation=rotation,
        duration=0.0, native_fps=0.0, num_frames=1, num_frames_exact=True, start_time=0.0, stream_index=0,
        video_streams=0, has_audio=False, pix_fmt=mode, bit_depth=16 if mode.startswith("I;16") else 8,
        color_range="pc", keyframe_interval=None, size_bytes=p.stat().st_size,
    )


# --- decoding ------------------------------------------------------------------------------


@dataclass
class _Decoded:
    frames: np.ndarray | None = None  # (T, H, W, 3)
    times: list[float] = field(default_factory=list)  # absolute presentation times
    decoded: int = 0  # frames that came out of the decoder
    errors: int = 0  # packets that failed to demux or decode
    corrupt: int = 0  # frames the decoder flagged as damaged (not kept)
    dropped: int = 0  # packets that went in and never came out as a frame
    truncated: bool = False  # the stream ended before its stated duration
    missing: list[float] = field(default_factory=list)  # target times with no frame near them

    @property
    def damaged(self) -> bool:
        return bool(self.errors or self.corrupt or self.dropped or self.truncated)

    def describe(self) -> str:
        parts = [
            f"{self.errors} unreadable packet(s)" if self.errors else "",
            f"{self.corrupt} damaged frame(s)" if self.corrupt else "",
            f"{self.dropped} frame(s) that did not decode" if self.dropped else "",
            "it ends early" if self.truncated else "",
        ]
        return ", ".join(p for p in parts if p) or "frames missing"


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
        indexed = container.format.name.startswith(("mov", "matroska"))
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
                self.out.errors += 1
                consecutive += 1

    def frames(self) -> Iterator:
        """Decoded frames in presentation order, with known times; damaged ones are counted, not given."""
        last = None
        fed: list[int] = []  # pts of packets sent to the decoder that have not come out yet
        first_pts = None  # the first frame out after a seek
        tainted = False  # damage since the last keyframe: what decodes until the next one is suspect
        last_pts, last_duration = None, 0
        for packet in self.packets():
            if packet.size and packet.pts is not None:
                heapq.heappush(fed, packet.pts)
            try:
                frames = self.stream.decode(packet)
            except av.error.FFmpegError:
                self.out.errors += 1
                tainted = True
                continue
            for frame in frames:
                self.out.decoded += 1
                if frame.pts is not None and self.index_keys and last_pts is not None:
                    lost = (bisect.bisect_left(self.index_keys, frame.pts)
                            - bisect.bisect_right(self.index_keys, last_pts))
                    self.out.dropped += max(0, lost)
                    tainted = tainted or lost > 0 and not frame.key_frame
                if frame.pts is not None and last_pts is not None and last_duration:
                    # frames that tell their duration: a hole after one means frames were lost
                    missed = round((frame.pts - last_pts) / last_duration) - 1
                    if missed >= 2:
                        self.out.dropped += missed
                        tainted = tainted or not frame.key_frame
                if frame.pts is not None:
                    last_pts, last_duration = frame.pts, frame.duration or 0
                    if first_pts is None:
                        first_pts = frame.pts
                    while fed and fed[0] < frame.pts:  # went in before this one, never came out
                        # (ones before the first frame are leading frames that a seek skips)
                        self.out.dropped += heapq.heappop(fed) > first_pts
                    if fed and fed[0] == frame.pts:
                        heapq.heappop(fed)
                if frame.key_frame and not frame.is_corrupt:
                    tainted = False
                if frame.is_corrupt or tainted:
                    self.out.corrupt += 1
                    tainted = True
                    continue
                t = _frame_time(frame, self.stream.time_base)
                if t is None:  # no pts: one frame period after the previous
                    t = (last if last is not None else self.info.start_time) + 1.0 / self.info.native_fps
                last = t
                yield frame, t

    def first_frame(self):
        """The first frame after a seek, decoding as little as possible (one frame for a keyframe)."""
        ctx = self.stream.codec_context
        damage = self.out.errors + self.out.corrupt
        for packet in self.packets():
            try:
                frames = self.stream.decode(packet)
                if not frames and packet.size:
                    frames = ctx.decode(None)  # drain: frame threading holds the frame back
                    ctx.flush_buffers()
            except av.error.FFmpegError:
                self.out.errors += 1
                ctx.flush_buffers()
                continue
            frames = [f for f in frames if not f.is_corrupt] or self._count_corrupt(frames)
            if frames:
                self.out.decoded += len(frames)
                frame = frames[0]
                t = _frame_time(frame, self.stream.time_base)
                if not frame.key_frame and self.out.errors + self.out.corrupt > damage:
                    return None, None  # decoded from a damaged keyframe: not trustworthy
                return frame, (t if t is not None else self.info.start_time)
        return None, None

    def _count_corrupt(self, frames: list) -> list:
        self.out.corrupt += len(frames)
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


def _decode_exact(src: _Source, targets: list[float], spacing: float) -> None:
    info = src.info
    gap = info.keyframe_interval or _DEFAULT_KEYFRAME_INTERVAL
    frames = None
    pending = None  # decoded, shown after the current target
    prev = None  # (frame, t): last decoded frame shown at or before the current target
    limit = max(spacing, 2.0 / info.native_fps)  # farther than this from its target, a frame is not it
    for target in targets:
        current = pending if pending is not None else prev
        if frames is None or current is None or target - current[1] > gap:
            frames, prev, pending = _seek_before(src, target, gap)
        ended = False
        while True:
            item = pending if pending is not None else next(frames, None)
            pending = None
            if item is None:
                ended = True
                break
            if item[1] <= target + 1e-9:
                prev = item
            else:
                pending = item
                break
        chosen = prev if prev is not None else pending
        if chosen is not None and ended and target - chosen[1] > limit:
            src.out.truncated = True
        if chosen is None or (src.out.damaged and abs(chosen[1] - target) > limit):
            src.out.missing.append(target)  # a damaged stretch: nothing decodes near this target
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
        if first is None or first[1] <= target + 1e-9 or first[1] <= start + 1e-6 or not math.isfinite(at):
            return frames, None, first
    raise AssertionError("unreachable")


def _decode_snap(src: _Source, targets: list[float], spacing: float) -> None:
    gap = src.info.keyframe_interval or _DEFAULT_KEYFRAME_INTERVAL
    end = src.info.start_time + src.info.duration
    last_t = -math.inf
    for target in targets:
        src.seek(min(target + gap / 2, end))  # lands on the keyframe nearest the target
        frame, t = src.first_frame()
        if frame is None or t <= last_t + 1e-9 or abs(t - target) > max(gap, spacing):
            # the nearest keyframe is taken already (or there is none): fall back to exact
            frames, prev, pending = _seek_before(src, target, gap)
            item = pending
            while item is not None and item[1] <= target + 1e-9:
                prev, item = item, next(frames, None)
            chosen = prev if prev is not None else item
            if chosen is None or chosen[1] <= last_t + 1e-9:
                src.out.missing.append(target)
                continue
            frame, t = chosen
        src.keep(frame, t)
        last_t = t


def _decode_video(info: VideoInfo, plan, config: SamplingConfig) -> _Decoded:
    p = Path(info.path)
    with _open(p) as container:
        stream = container.streams[info.stream_index]
        _prepare(p, stream)
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


def load_clip(path: str | os.PathLike, config: SamplingConfig = SamplingConfig()) -> Clip:
    """Sample `path` by `config`: frames (T, H, W, 3) uint8 RGB upright, with their times."""
    info = probe_video(path)
    plan = plan_sampling(info, config)
    if info.kind == "image":
        frames = _load_image(info, config)
        return Clip(info.path, frames, (0.0,), 0.0, 0.0, 0.0, plan.segments, (), info, "exact", 1)
    out = _decode_video(info, plan, config)
    warnings = list(plan.warnings)
    if out.damaged or out.missing:
        if len(out.times) < max(1, math.ceil(plan.num_frames / 2)):
            raise CorruptVideoError(
                f"{info.path}: damaged ({out.describe()}); only {len(out.times)} of "
                f"{plan.num_frames} sampled frames decode"
            )
        warnings.append(
            f"{info.path}: damaged ({out.describe()}); {len(out.times)} of {plan.num_frames} sampled frames decoded"
        )
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
