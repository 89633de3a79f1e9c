"""Sampling math: counts, timestamps, segments, seek choice, config validation (no decoding)."""

from __future__ import annotations

import dataclasses

import pytest

from clapper_core.errors import ConfigError
from clapper_core.video import SamplingConfig, VideoInfo, make_segments, plan_sampling


def info(duration: float, fps: float = 30.0, *, keyframe_interval: float | None = 2.0, num_frames=None) -> VideoInfo:
    return VideoInfo(
        path="x.mp4", kind="video", container="mp4", codec="h264", width=64, height=48, rotation=0,
        duration=duration, native_fps=fps, num_frames=num_frames or round(duration * fps), num_frames_exact=True,
        start_time=0.0, stream_index=0, video_streams=1, has_audio=False, pix_fmt="yuv420p", bit_depth=8,
        color_range="tv", keyframe_interval=keyframe_interval, size_bytes=1,
    )


def test_default_is_one_frame_per_second_rounded_to_whole_segments():
    plan = plan_sampling(info(20.0))
    assert plan.num_frames == 20 and plan.mode == "fps"
    assert plan.timestamps[:3] == pytest.approx((0.5, 1.5, 2.5))
    assert plan.sample_fps == pytest.approx(1.0)
    assert plan_sampling(info(10.4)).num_frames == 12  # 10.4 -> nearest multiple of 4


def test_long_video_is_capped_at_max_frames_spread_over_the_whole_video():
    plan = plan_sampling(info(3600.0))
    assert plan.num_frames == 96 and plan.mode == "capped"
    assert plan.timestamps[0] == pytest.approx(3600 / 96 / 2)
    assert plan.timestamps[-1] == pytest.approx(3600 - 3600 / 96 / 2)


def test_num_frames_overrides_fps():
    plan = plan_sampling(info(100.0), SamplingConfig(num_frames=7))
    assert plan.num_frames == 7 and plan.mode == "num_frames"
    gaps = {round(b - a, 9) for a, b in zip(plan.timestamps, plan.timestamps[1:])}
    assert gaps == {round(100 / 7, 9)}


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_tiny_videos_sample_every_frame_they_have(frames):
    plan = plan_sampling(info(frames / 25, 25.0), SamplingConfig(num_frames=8))
    assert plan.num_frames == frames
    assert plan.warnings and f"only {frames} frame" in plan.warnings[0]
    assert plan_sampling(info(frames / 25, 25.0)).num_frames == 1  # at least one frame at 1 fps


def test_segments_tile_the_video_and_a_lone_last_frame_is_keyframe_only():
    plan = plan_sampling(info(9.0), SamplingConfig(num_frames=9))
    assert [(s.start, s.stop) for s in plan.segments] == [(0, 4), (4, 8), (8, 9)]
    assert plan.segments[0].start_time == 0.0 and plan.segments[-1].end_time == pytest.approx(9.0)
    assert all(a.end_time == pytest.approx(b.start_time) for a, b in zip(plan.segments, plan.segments[1:]))
    assert [s.has_fast_path for s in plan.segments] == [True, True, False]
    assert plan.segments[1].keyframe == 4 and plan.segments[1].num_frames == 4


def test_visual_tokens_count_196_per_keyframe_and_49_per_fast_path():
    from clapper_core.model.tokens import DEFAULT_COSTS, TokenCosts

    assert DEFAULT_COSTS.count(plan_sampling(info(3600.0)).segment_sizes) == 24 * 245 == 5880
    plan = plan_sampling(info(9.0), SamplingConfig(num_frames=9))
    assert plan.segment_sizes == (4, 4, 1)
    assert DEFAULT_COSTS.count(plan.segment_sizes) == 2 * 245 + 196
    assert TokenCosts(keyframe=10, fast=1, segment_size=4).count(plan.segment_sizes) == 32


def test_make_segments_uses_midpoints_between_irregular_frames():
    segments = make_segments((0.0, 1.0, 3.0), 4.0, 2)
    assert [(s.start_time, s.end_time) for s in segments] == [(0.0, 2.0), (2.0, 4.0)]


def test_auto_seek_snaps_only_when_targets_are_keyframe_intervals_apart():
    assert plan_sampling(info(1800.0, keyframe_interval=2.0)).seek == "snap"  # 18.75 s apart
    assert plan_sampling(info(1800.0, keyframe_interval=10.0)).seek == "exact"  # under two intervals
    assert plan_sampling(info(30.0, keyframe_interval=2.0)).seek == "exact"  # short clip
    assert plan_sampling(info(3600.0, keyframe_interval=None)).seek == "exact"  # unknown spacing
    assert plan_sampling(info(30.0), SamplingConfig(seek="snap")).seek == "snap"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"fps": 0}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"max_frames": 0}, "max_frames"),
        ({"num_frames": 2.5}, "num_frames"),
        ({"segment_size": True}, "segment_size"),
        ({"seek": "fast"}, "auto, exact, snap"),
        ({"max_short_side": 8}, "max_short_side"),
    ],
)
def test_config_errors_name_the_value_and_the_fix(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        SamplingConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SamplingConfig().fps = 2.0  # type: ignore[misc]
