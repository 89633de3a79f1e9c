"""ClapperProcessor: pixels, segment layout, the chat prompt with timestamps and placeholders."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from clapper_core.errors import ConfigError


@pytest.fixture
def processor(tiny_loaded):
    return tiny_loaded.processor


def test_pixels_are_resized_and_normalised(processor, tiny_frames):
    frames, _ = tiny_frames
    px = processor.preprocess_frames(frames)
    assert px.shape == (10, 3, 28, 28)
    assert px.min() >= -1.0 and px.max() <= 1.0
    white = processor.preprocess_frames(np.full((1, 28, 28, 3), 255, np.uint8))
    assert np.allclose(white.numpy(), 1.0)


def test_prompt_layout_with_timestamps(processor, tiny_frames):
    frames, ts = tiny_frames
    inputs = processor(frames=frames, timestamps=ts, question="what happens?")
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert inputs["segment_sizes"] == [4, 4, 2]
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n[0.0s]")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n") and "<video>\nwhat happens?<|im_end|>" in text
    # [0.0s] 25 tokens [2.0s] 25 tokens [4.0s] 16 + 9 tokens
    assert text.count("<video>") == 75 and "[2.0s]<video>" in text and "[4.0s]<video>" in text


def test_segments_from_a_clip_and_their_start_times(processor):
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    segs = (
        SimpleNamespace(start=0, stop=4, start_time=0.0),
        SimpleNamespace(start=4, stop=5, start_time=7.5),
    )
    clip = SimpleNamespace(frames=frames, timestamps=(0.0, 1.0, 2.0, 3.0, 8.0), segments=segs)
    video = processor.prepare_video(clip)
    assert video.segment_sizes == (4, 1) and video.num_visual_tokens == 25 + 16
    assert video.segment_start_times == (0.0, 7.5)
    assert "[7.5s]" in processor.tokenizer.decode(list(video.prefix_ids))


def test_no_timestamps_when_switched_off(tiny_loaded, tiny_frames):
    from clapper_core.model.processing_clapper import ClapperProcessor

    cfg = tiny_loaded.config.__class__.from_dict(tiny_loaded.config.to_dict())
    cfg.segment_timestamps = False
    proc = ClapperProcessor(tiny_loaded.processor.tokenizer, cfg)
    frames, ts = tiny_frames
    text = proc.tokenizer.decode(proc(frames=frames, timestamps=ts, question="q")["input_ids"][0])
    assert "s]" not in text and text.count("<video>") == 75


@pytest.mark.parametrize(
    "segments, match",
    [([(0, 5), (5, 10)], "exceeds"), ([(0, 4), (5, 10)], "in order"), ([(0, 4), (4, 8)], "cover 8 frames")],
)
def test_bad_segments_are_config_errors(processor, tiny_frames, segments, match):
    frames, ts = tiny_frames
    with pytest.raises(ConfigError, match=match):
        processor.prepare_video(frames=frames, timestamps=ts, segments=segments)


def test_bad_frames_are_config_errors(processor):
    with pytest.raises(ConfigError, match="no frames"):
        processor.prepare_video(frames=np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match="RGB"):
        processor.prepare_video(frames=np.zeros((2, 8, 8), np.uint8))


def test_prefix_and_question_split_equals_one_prompt(processor, tiny_frames):
    frames, ts = tiny_frames
    video = processor.prepare_video(frames=frames, timestamps=ts)
    whole = processor(frames=frames, timestamps=ts, question="and then?")["input_ids"][0].tolist()
    assert whole == list(video.prefix_ids) + processor.question_ids("and then?")


def test_save_and_load(processor, tmp_path):
    from clapper_core.model.processing_clapper import ClapperProcessor

    processor.save_pretrained(tmp_path)
    back = ClapperProcessor.from_pretrained(tmp_path, processor.config)
    assert back.image_mean == processor.image_mean and back.question_ids("x") == processor.question_ids("x")


def test_read_only_frames_raise_no_warning():
    """A read-only array (an image's frames, say) reaches torch without NumPy's "not writable" warning.

    torch gives that warning once per process, so the check runs in a fresh one.
    """
    import subprocess
    import sys

    code = """if True:
        import warnings
        import numpy as np
        from clapper_core.model.processing_clapper import ClapperProcessor
        warnings.simplefilter("error")
        p = object.__new__(ClapperProcessor)
        p.image_size, p.image_mean, p.image_std = 8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        frames = np.full((1, 8, 8, 3), 255, np.uint8)
        frames.flags.writeable = False
        assert float(p.preprocess_frames(frames).min()) == 1.0
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "not writable" not in done.stderr, done.stderr
