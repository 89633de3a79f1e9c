"""Decoding generated videos: exact frames, variable frame rate, odd sizes, rotation, colour, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from clapper_core.errors import (
    ClapperError,
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    NotAVideoError,
    VideoNotFoundError,
)
from clapper_core.video import SamplingConfig, load_clip, probe_video
from tests.fixtures.video import frame_index, make_audio, make_image, make_video


def indices(clip) -> list[int]:
    return [frame_index(f) for f in clip.frames]


def test_tiny_video_probe(tiny_video):
    info = probe_video(tiny_video)
    assert (info.kind, info.codec, info.width, info.height) == ("video", "h264", 64, 48)
    assert info.duration == pytest.approx(3.0) and info.native_fps == pytest.approx(10.0)
    assert info.num_frames == 30 and info.keyframe_interval == pytest.approx(1.0)


def test_exact_sampling_picks_the_frame_shown_at_each_target(tiny_video):
    clip = load_clip(tiny_video, SamplingConfig(num_frames=6, seek="exact"))
    # targets at 0.25, 0.75, ... 2.75 s: the frame shown is the one that started before each
    assert clip.timestamps == pytest.approx((0.2, 0.7, 1.2, 1.7, 2.2, 2.7))
    assert indices(clip) == [2, 7, 12, 17, 22, 27]
    assert clip.frames.shape == (6, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.sample_fps == pytest.approx(2.0) and clip.native_fps == pytest.approx(10.0)
    assert [s.num_frames for s in clip.segments] == [4, 2] and not clip.warnings


def test_every_frame_when_fps_matches(tiny_video):
    clip = load_clip(tiny_video, SamplingConfig(fps=10, max_frames=30))
    assert indices(clip) == list(range(30))


def test_sparse_seeking_matches_decoding_straight_through(video_dir):
    path = make_video(video_dir / "gop5.mp4", frames=120, fps=10, gop=5)
    sparse = load_clip(path, SamplingConfig(num_frames=5, seek="exact"))  # 2.4 s apart: seeks
    assert indices(sparse) == [int((k + 0.5) * 120 / 5) for k in range(5)]
    assert sparse.decoded_frames < 60  # not the whole video


def test_snap_takes_the_nearest_keyframe(video_dir):
    path = make_video(video_dir / "gop10.mp4", frames=200, fps=10, gop=10)
    clip = load_clip(path, SamplingConfig(num_frames=5, seek="snap"))
    # targets 2, 6, 10, 14, 18 s; keyframes every 1 s
    assert indices(clip) == [20, 60, 100, 140, 180]
    assert clip.seek == "snap" and clip.decoded_frames <= 5 * 3
    assert load_clip(path, SamplingConfig(num_frames=5)).seek == "snap"  # auto: 4 s apart, 1 s keyframes


def test_variable_frame_rate_samples_by_time(video_dir):
    times = [0.0, 0.1, 0.5, 0.6, 1.6, 1.7, 1.8, 3.0, 3.1]
    path = make_video(video_dir / "vfr.mp4", frames=len(times), fps=10, times=times)
    info = probe_video(path)
    clip = load_clip(path, SamplingConfig(num_frames=8, seek="exact"))
    step = info.duration / 8
    expected = [max(i for i, t in enumerate(times) if t <= (k + 0.5) * step + 1e-9) for k in range(8)]
    assert indices(clip) == expected
    assert clip.timestamps == pytest.approx(tuple(times[i] for i in expected))


def test_vfr_pattern(video_dir):
    path = make_video(video_dir / "vfr2.mp4", frames=20, fps=10, vfr=True)
    clip = load_clip(path, SamplingConfig(fps=4, seek="exact"))
    for t, i in zip(clip.timestamps, indices(clip)):
        assert frame_index(clip.frames[clip.timestamps.index(t)]) == i


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_one_to_three_frame_videos(video_dir, frames):
    path = make_video(video_dir / f"n{frames}.mp4", frames=frames, fps=25)
    clip = load_clip(path, SamplingConfig(num_frames=4))
    assert indices(clip) == list(range(frames))
    assert len(clip.segments) == 1 and clip.segments[0].has_fast_path == (frames >= 2)
    assert load_clip(path).num_frames == 1


def test_odd_frame_size(video_dir):
    path = make_video(video_dir / "odd.mkv", frames=8, fps=8, size=(67, 45), pix_fmt="yuv444p")
    clip = load_clip(path, SamplingConfig(fps=8))
    assert clip.frames.shape[1:] == (45, 67, 3) and indices(clip) == list(range(8))


def test_large_frames_are_scaled_down_when_kept(video_dir):
    path = make_video(video_dir / "big.mp4", frames=4, fps=4, size=(320, 160))
    assert load_clip(path, SamplingConfig(max_short_side=80)).frames.shape[1:] == (80, 160, 3)
    assert load_clip(path, SamplingConfig(max_short_side=None)).frames.shape[1:] == (160, 320, 3)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_comes_out_upright(video_dir, rotation):
    # A camera stores the upright picture turned; the display matrix turns it back.
    def stored(i, w, h):
        upright = np.zeros((96, 64, 3), np.uint8)
        upright[:32] = (255, 0, 0)  # red at the top
        upright[:, :16] = (0, 0, 255)  # blue on the left
        return np.ascontiguousarray(np.rot90(upright, k=-rotation // 90))

    size = (96, 64) if rotation in (90, 270) else (64, 96)
    path = make_video(video_dir / f"rot{rotation}.mp4", frames=2, fps=2, size=size, rotation=rotation, content=stored)
    info = probe_video(path)
    assert (info.width, info.height) == (64, 96) and info.rotation == (-rotation) % 360
    frame = load_clip(path).frames[0].astype(int)
    assert frame.shape == (96, 64, 3)
    assert frame[4, 40, 0] > 200 and frame[4, 40, 2] < 60  # top is red
    assert frame[60, 4, 2] > 200 and frame[60, 4, 0] < 60  # left is blue
    assert frame[80, 40].max() < 40  # the rest is black


COLOUR = (200, 60, 30)


def _flat(i, w, h):
    return np.full((h, w, 3), COLOUR, np.uint8)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("limited", {"pix_fmt": "yuv420p"}),
        ("yuvj", {"pix_fmt": "yuvj420p"}),
        ("tagged-full", {"pix_fmt": "yuv420p", "full_range": True}),
        ("10bit", {"pix_fmt": "yuv420p10le"}),
    ],
)
def test_colour_conversion(video_dir, name, kwargs):
    path = make_video(video_dir / f"colour-{name}.mp4", frames=2, fps=2, content=_flat, options={"crf": "4"}, **kwargs)
    info = probe_video(path)
    if name == "10bit":
        assert info.bit_depth == 10
    if name != "limited":
        assert info.color_range == ("pc" if "full" in name or name == "yuvj" else info.color_range)
    mean = load_clip(path).frames[0].reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - COLOUR).max() < 6, mean


def test_default_stream_and_audio_ignored(video_dir):
    path = make_video(video_dir / "with-audio.mp4", frames=10, fps=10, audio=True)
    info = probe_video(path)
    assert info.has_audio and info.video_streams == 1
    assert indices(load_clip(path, SamplingConfig(num_frames=2))) == [2, 7]


# --- images ------------------------------------------------------------------------


def test_still_image_is_a_one_frame_video(still_image):
    clip = load_clip(still_image)
    assert clip.frames.shape == (1, 30, 40, 3) and clip.timestamps == (0.0,)
    assert frame_index(clip.frames[0]) == 5 and clip.info.kind == "image"
    assert clip.segment_sizes == (1,) and not clip.segments[0].has_fast_path


@pytest.mark.parametrize("suffix", ["jpg", "webp"])
def test_other_image_formats(video_dir, suffix):
    path = make_image(video_dir / f"still.{suffix}", size=(120, 90), index=9)
    assert frame_index(load_clip(path).frames[0]) == 9


def test_exif_orientation_is_honoured(video_dir):
    from PIL import Image

    path = video_dir / "exif.jpg"
    img = Image.new("RGB", (60, 40), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 60, 10))  # red along the stored top
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img.save(path, exif=exif)
    info = probe_video(path)
    frame = load_clip(path).frames[0]
    assert (info.width, info.height) == (40, 60) and frame.shape == (60, 40, 3)
    assert frame[30, 35, 0] > 200 and frame[30, 5, 0] < 60  # stored top is now on the right


# --- bad input -----------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(VideoNotFoundError, match="no such file") as exc:
        load_clip(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(exc.value)


def test_directory(tmp_path):
    with pytest.raises(VideoNotFoundError, match="is a directory"):
        probe_video(tmp_path)


def test_text_file(tmp_path):
    for name in ("notes.txt", "notes.mp4"):
        path = tmp_path / name
        path.write_text("just some words\n" * 40)
        with pytest.raises(NotAVideoError, match=name):
            load_clip(path)


def test_audio_only(tmp_path):
    path = make_audio(tmp_path / "sound.m4a")
    with pytest.raises(NoVideoStreamError, match="no video stream .*audio"):
        load_clip(path)


def test_zero_length(tmp_path):
    import av

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="empty"):
        load_clip(empty)
    header_only = tmp_path / "header-only.mkv"
    with av.open(str(header_only), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(EmptyVideoError, match="header-only.mkv"):
        load_clip(header_only)


def _damage(path, fraction=0.5, length=600):
    data = bytearray(path.read_bytes())
    mid = int(len(data) * fraction)
    data[mid - length // 2 : mid + length // 2] = np.random.default_rng(0).integers(0, 256, length, np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix, seek", [("mp4", "exact"), ("mkv", "exact"), ("mp4", "snap")])
def test_corrupted_part_way_yields_frames_with_a_warning(tmp_path, suffix, seek):
    path = make_video(tmp_path / f"damaged.{suffix}", frames=100, fps=10, gop=10)
    _damage(path)
    clip = load_clip(path, SamplingConfig(fps=2, seek=seek))
    assert clip.warnings and "damaged" in clip.warnings[0] and path.name in clip.warnings[0]
    assert 10 <= clip.num_frames < 20
    got = indices(clip)
    for t, i in zip(clip.timestamps, got):  # every kept frame is a real one, at its own time
        assert i == round(t * 10)
    assert got[:9] == [2, 7, 12, 17, 22, 27, 32, 37, 42][: len(got[:9])] or seek == "snap"


def test_truncated_mkv_keeps_what_decodes(tmp_path):
    path = make_video(tmp_path / "cut.mkv", frames=100, fps=10, gop=10)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    clip = load_clip(path, SamplingConfig(fps=2))
    assert "damaged" in clip.warnings[0] and clip.num_frames >= 10
    assert indices(clip) == [round(t * 10) for t in clip.timestamps]


def test_mostly_destroyed_video_is_an_error(tmp_path):
    path = make_video(tmp_path / "wreck.mkv", frames=100, fps=10, gop=10)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.25)])
    with pytest.raises(CorruptVideoError, match="wreck.mkv"):
        load_clip(path, SamplingConfig(fps=2))


def test_errors_are_one_line_clapper_errors(tmp_path):
    for bad in (tmp_path / "missing.mp4", tmp_path):
        with pytest.raises(ClapperError) as exc:
            load_clip(bad)
        assert "\n" not in str(exc.value)


# --- the result --------------------------------------------------------------------


def test_to_tensor(tiny_video):
    clip = load_clip(tiny_video, SamplingConfig(num_frames=4))
    tensor = clip.to_tensor()
    assert tuple(tensor.shape) == (4, 3, 48, 64) and str(tensor.dtype) == "torch.uint8"
    assert np.array_equal(tensor.permute(0, 2, 3, 1).numpy(), clip.frames)


def test_probe_and_load_do_not_import_torch(tiny_video):
    code = (
        "import sys; from clapper_core.video import load_clip, probe_video;"
        f"probe_video({str(tiny_video)!r}); load_clip({str(tiny_video)!r});"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "False False"


def test_image_frames_are_writable_like_video_frames(still_image, tiny_video):
    assert load_clip(still_image).frames.flags.writeable and load_clip(tiny_video).frames.flags.writeable
