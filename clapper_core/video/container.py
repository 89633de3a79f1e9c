"""Opening a video container: check the file, pick the video stream, read its metadata.

`probe_video` reads a file's header (and its first frame, for the display rotation and the
pixel format) into a `VideoInfo`, including the typical keyframe spacing that sampling uses to
choose between exact and snapped seeking. Images are probed with Pillow as one-frame videos.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import av

from clapper_core.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoNotFoundError,
)
from clapper_core.video.clip import VideoInfo

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
_IMAGE_DEMUXERS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif_pipe"}
# Containers FFmpeg will open that are not pictures at all (text rendered as video, say).
_NON_VIDEO_DEMUXERS = {"tty", "lavfi"}
# Only MP4/MOV and Matroska carry a real keyframe index; others (MPEG-PS) build one while reading.
INDEXED_FORMATS = ("mov", "matroska")


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise VideoNotFoundError(f"{p}: is a directory, not a video file; pass a file inside it")
    if p.stat().st_size == 0:
        raise EmptyVideoError(f"{p}: is empty (0 bytes)")
    return p


def open_container(p: Path) -> av.container.InputContainer:
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


def prepare_stream(p: Path, stream, threads: int = 0) -> None:
    """Check there is a decoder, and set its threads: 0 lets FFmpeg choose (frame and slice threads, what one long
    video wants), 1 decodes on the calling thread (what each of several decode workers sharing the cores wants)."""
    if stream.codec_context is None:
        name = getattr(stream.codec, "name", None) or "unknown"
        raise UnsupportedCodecError(
            f"{p}: this FFmpeg build has no decoder for its {name} video; re-encode it (H.264, say)"
        )
    stream.thread_type = "NONE" if threads == 1 else "AUTO"
    if threads > 1:
        stream.codec_context.thread_count = threads


def _seconds(value, time_base) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def frame_time(frame, time_base=None) -> float | None:
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
    indexed = container.format.name.startswith(INDEXED_FORMATS)
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


def probe_video(path: str | os.PathLike, *, threads: int = 0) -> VideoInfo:
    """What `path` holds: stream, size, duration, rate, rotation; decodes only the first frame (`threads`: as in
    `prepare_stream`)."""
    p = _check_path(path)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return _probe_image(p)
    with open_container(p) as container:
        if container.format.name in _IMAGE_DEMUXERS:
            return _probe_image(p)
        stream = _pick_stream(p, container)
        prepare_stream(p, stream, threads)
        try:
            first, _ = _first_frame(stream, container.demux(stream))
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"{p}: its video stream cannot be read ({exc})") from exc
        if first is None:
            raise EmptyVideoError(f"{p}: its video stream has no frame that decodes; the file is empty or broken")
        tb = stream.time_base
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0) or 25.0
        start = frame_time(first)
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
