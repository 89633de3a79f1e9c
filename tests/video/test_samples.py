"""Every real video in ../shared/videos decodes, with sensible metadata and exact frame times."""

from __future__ import annotations

import av
import pytest

from clapper_core.errors import UnsupportedCodecError
from clapper_core.video import SamplingConfig, load_clip, probe_video

EXPECTED = {  # from the sample videos' README: (width, height, fps, duration)
    "flipping_a_pancake.mkv": (426, 240, 30.0, 10.4),
    "nasa_13013.mp4": (480, 270, 29.97, 13.0),  # the default stream: FFmpeg's best of the two
    "av1_video.mkv": (640, 360, 25.0, 5.0),
    "cityCC0.mpg": (720, 405, 25.0, 7.6),
}


def _has_decoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "r")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def test_every_sample_video(sample_videos):
    for path in sample_videos:
        if path.suffix == ".mkv" and "av1" in path.name and not (_has_decoder("libdav1d") or _has_decoder("av1")):
            with pytest.raises(UnsupportedCodecError, match=path.name):
                load_clip(path)
            continue
        info = probe_video(path)
        clip = load_clip(path, SamplingConfig(seek="exact"))
        assert clip.num_frames >= 4 and not clip.warnings, (path.name, clip.warnings)
        assert clip.frames.shape[1:] == (info.height, info.width, 3)
        assert list(clip.timestamps) == sorted(clip.timestamps)
        plan_gap = info.duration / clip.num_frames
        for k, t in enumerate(clip.timestamps):  # the frame shown at each target: at most one frame before it
            target = (k + 0.5) * plan_gap
            assert target - 1.0 / info.native_fps - 1e-3 <= t <= target + 1e-6, (path.name, k, t, target)
        if path.name in EXPECTED:
            width, height, fps, duration = EXPECTED[path.name]
            assert (info.width, info.height) == (width, height)
            assert info.native_fps == pytest.approx(fps, abs=0.01)
            assert info.duration == pytest.approx(duration, abs=0.1)
        snapped = load_clip(path, SamplingConfig(seek="snap", num_frames=4))
        assert snapped.num_frames == 4 and not snapped.warnings


@pytest.mark.parametrize("threads", [1, 3])
def test_decoding_threads_give_the_same_frames(sample_videos, threads):
    """A decode worker's own thread count (`threads=1`: no FFmpeg threads) changes nothing in what it decodes."""
    import numpy as np

    for path in sample_videos:
        try:
            auto = load_clip(path, SamplingConfig(seek="exact"))
        except UnsupportedCodecError:
            continue
        mine = load_clip(path, SamplingConfig(seek="exact"), threads=threads)
        assert mine.timestamps == auto.timestamps and np.array_equal(mine.frames, auto.frames), path.name


def test_nasa_has_two_video_streams_and_audio(sample_videos):
    path = next((p for p in sample_videos if p.name == "nasa_13013.mp4"), None)
    if path is None:
        pytest.skip("nasa_13013.mp4 is not among the sample videos")
    info = probe_video(path)
    assert info.video_streams == 2 and info.has_audio and info.stream_index == 3


def test_av1_decodes_here(sample_videos):
    path = next((p for p in sample_videos if p.name == "av1_video.mkv"), None)
    if path is None or not (_has_decoder("libdav1d") or _has_decoder("av1")):
        pytest.skip("no AV1 sample or no AV1 decoder in this FFmpeg build")
    assert load_clip(path, SamplingConfig(num_frames=4)).frames.shape == (4, 360, 640, 3)
