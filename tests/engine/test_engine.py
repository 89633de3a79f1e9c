"""The batched engine gives, token for token, the answers of one video at a time, and loses nothing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from clapper_core.engine import Engine, EngineConfig, InOrder, Work
from clapper_core.engine.pipeline import Prefetch
from clapper_core.errors import ConfigError
from clapper_core.generation import GenerationConfig
from clapper_core.hardware import usable_cores
from clapper_core.settings import resolve
from clapper_core.video import SamplingConfig
from tests.cli.conftest import corrupt_video
from tests.cli.fake_model import FakeBackend, FakeLoaded
from tests.fixtures.video import make_video

PROMPT = "Describe this video in detail."


@pytest.fixture(scope="module")
def mixed_videos(tmp_path_factory) -> list[Path]:
    """Eight videos of 1 to 8 s: at 1 fps, one or two segments of 1 to 4 frames."""
    root = tmp_path_factory.mktemp("mixed")
    return [make_video(root / f"v{i}.mp4", frames=10 * (1 + i), fps=10, size=(48, 32)) for i in range(8)]


def _answers(loaded, videos, *, batch_size: int, workers: int = 2, new_tokens: int = 12, questions=(PROMPT,),
             processes: bool = False):
    config = EngineConfig(batch_size=batch_size, decode_workers=workers, decode_processes=processes)
    engine = Engine(loaded, config, SamplingConfig(fps=1.0), GenerationConfig(max_new_tokens=new_tokens), model="test")
    out = {}
    for done in engine.run([Work(str(v), list(questions)) for v in videos]):
        out[(done.work, done.question)] = done.record
    return out, engine.stats


def test_a_batch_answers_as_one_at_a_time_with_mixed_frame_counts(tiny_loaded, mixed_videos):
    serial, _ = _answers(tiny_loaded, mixed_videos, batch_size=1, workers=0)
    # 3 places for 16 answers: rows finish and the next ones join the running batch
    batched, stats = _answers(tiny_loaded, mixed_videos, batch_size=3, questions=(PROMPT, "What moves?"))
    assert len(batched) == 16 and stats.videos == 8 and stats.answers == 16
    for (w, q), record in serial.items():
        assert record.ok and record.new_tokens == 12
        assert batched[(w, q)].answer == record.answer
        assert batched[(w, q)].visual_tokens == record.visual_tokens
    assert len({r.frames for r in serial.values()}) >= 4 and {len(r.segments) for r in serial.values()} == {1, 2}


def test_a_prepared_video_holds_the_model_pixels_and_not_the_decoded_frames(tiny_loaded, mixed_videos):
    """Videos waiting in the queue or answering in the batch hold no decoded frames: memory is the model's pixels."""
    from clapper_core.engine.backend import ModelBackend
    from clapper_core.records import clip_fields
    from clapper_core.video import load_clip

    clip = load_clip(mixed_videos[3], SamplingConfig(fps=1.0))
    prepared = ModelBackend(tiny_loaded, batch_size=2).prepare(clip)
    assert prepared.clip.frames.nbytes == 0 < clip.frames.nbytes
    assert clip_fields(prepared.clip) == clip_fields(clip) and prepared.clip.warnings == clip.warnings
    assert prepared.video.pixel_values.shape[0] == clip.num_frames == prepared.clip.num_frames


def test_rows_of_very_different_lengths_join_and_leave(tiny_loaded, monkeypatch):
    """Continuous batching on the LLM alone: each row's tokens are those it gets by itself, also when rows that
    share a prefix are prefilled together."""
    import torch

    from clapper_core.engine.batch import ContinuousBatch, Row
    from clapper_core.generation import stop_ids

    model, tok = tiny_loaded.model, tiny_loaded.processor.tokenizer
    embed = model.get_input_embeddings()
    prompts = ["a", "the quick brown fox", "hi there", "zz", "one two three four five six", "q"]
    limits = [1, 30, 5, 17, 2, 9]

    def embedded(text):
        return embed(torch.tensor(tok.encode(text, add_special_tokens=False))).detach()  # (L, D)

    def rows():
        # two "videos", each asked three questions: rows of one video share its prefix (and its prefill)
        videos = [embedded("a red circle, then a blue square"), embedded("nothing")]
        return [Row(i, videos[i // 3], embedded(p), GenerationConfig(max_new_tokens=n))
                for i, (p, n) in enumerate(zip(prompts, limits))]

    def run(capacity):
        batch, waiting, done = ContinuousBatch(model, stop_ids(model, tok), capacity=capacity), rows(), {}
        while waiting or batch.rows:
            batch.join([waiting.pop(0) for _ in range(min(batch.free, len(waiting)))])
            for row in batch.step():
                done[row.key] = row.tokens
        return done

    alone, together = run(1), run(3)
    assert [len(alone[i]) for i in range(6)] == limits  # a random model never stops by itself
    assert together == alone

    passes = []
    real_prefill = ContinuousBatch._prefill

    def counted(self, pieces, *args, **kwargs):
        passes.append(len(pieces))
        return real_prefill(self, pieces, *args, **kwargs)

    monkeypatch.setattr(ContinuousBatch, "_prefill", counted)
    assert run(6) == alone
    assert passes[:2] == [2, 6]  # two videos' prefixes prefilled once each, then the six questions on top


def test_the_demo_model_answers_the_same_batched_as_serially(mixed_videos, sample_videos, synthetic_videos):
    from clapper_core import runner

    settings = resolve({"max_new_tokens": 24}, env={}, path=Path("/nonexistent.toml"))
    loaded = runner.load(settings)
    videos = synthetic_videos + mixed_videos[:3] + sample_videos
    serial = [runner.VideoJob(loaded, v, settings, task="caption").answer(PROMPT) for v in videos]
    batched, _ = _answers(loaded, videos, batch_size=4, new_tokens=24)
    assert [batched[(i, 0)].answer for i in range(len(videos))] == [r.answer for r in serial]
    assert [batched[(i, 0)].new_tokens for i in range(len(videos))] == [r.new_tokens for r in serial]
    assert any(r.new_tokens < 24 for r in serial)  # some answers end early, others run on: lengths differ


@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory) -> list[Path]:
    """Four videos of the demo model's own world, which it answers and ends."""
    from clapper_core.synthetic.writer import make_video as make_scene_video

    root = tmp_path_factory.mktemp("world")
    return [make_scene_video(root, i, seed=5).path for i in range(4)]


@pytest.mark.parametrize("processes", [False, True], ids=["decode threads", "decode processes"])
def test_a_failing_video_in_the_middle_of_a_batch_fails_alone(tiny_loaded, mixed_videos, tmp_path, processes):
    bad = corrupt_video(tmp_path / "bad.mp4")
    missing = tmp_path / "gone.mp4"
    videos = mixed_videos[:3] + [bad] + mixed_videos[3:5] + [missing] + mixed_videos[5:]
    serial, _ = _answers(tiny_loaded, mixed_videos, batch_size=1, workers=0)
    batched, stats = _answers(tiny_loaded, videos, batch_size=4, processes=processes)
    assert batched[(3, 0)].error_type == "NotAVideoError" and batched[(3, 0)].answer is None
    assert batched[(6, 0)].error_type == "VideoNotFoundError"
    good = [i for i, v in enumerate(videos) if v not in (bad, missing)]
    assert [batched[(i, 0)].answer for i in good] == [serial[(i, 0)].answer for i in range(8)]
    assert stats.videos == 10


class _Staggered(FakeBackend):
    """Canned rows of 1 to 7 steps, so places free up a few at a time; records the size of every encode pass."""

    def __init__(self, loaded, config) -> None:
        super().__init__(loaded, config)
        self.started, self.groups = 0, []

    def answer(self, question: str, clip) -> str:
        self.started += 1
        return " ".join(["w"] * (1 + (3 * self.started) % 7))

    def encode(self, prepared):
        self.groups.append(len(prepared))
        return super().encode(prepared)


@pytest.mark.parametrize("refill", [1, 4])
def test_new_rows_join_once_refill_places_are_free(mixed_videos, refill):
    """A running batch takes waiting videos once `refill` places are free, and encodes them in one pass."""
    config = EngineConfig(batch_size=8, decode_workers=0, refill=refill)
    backend = _Staggered(None, config)
    engine = Engine(FakeLoaded(), config, SamplingConfig(fps=1.0), GenerationConfig(), model="test", backend=backend)
    works = [Work(str(v), [PROMPT]) for v in mixed_videos * 4]
    assert sorted(done.work for done in engine.run(works)) == list(range(32))
    groups, left = backend.groups, [32 - sum(backend.groups[:i]) for i in range(len(backend.groups))]
    assert groups[0] == 8 and sum(groups) == 32
    joins_at_refill = [n >= min(refill, rest) for n, rest in zip(groups, left)]
    assert all(joins_at_refill) if refill == 4 else not all(n >= 4 for n in groups)  # one place at a time


def test_refill_defaults_to_a_quarter_of_the_batch():
    assert EngineConfig(batch_size=16).join_at == 4 and EngineConfig(batch_size=3).join_at == 1
    assert EngineConfig(batch_size=8, refill=8).join_at == 8
    assert EngineConfig(decode_workers=0).decode_threads == 0  # the model's thread decodes: FFmpeg chooses
    assert EngineConfig(decode_workers=usable_cores()).decode_threads == 1  # the workers split the cores
    with pytest.raises(ConfigError, match="refill=9"):
        EngineConfig(batch_size=8, refill=9)


def test_batch_size_below_one_is_refused():
    with pytest.raises(ConfigError, match="--batch-size 0"):
        EngineConfig(batch_size=0)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        resolve({"batch_size": -2}, env={}, path=Path("/nonexistent.toml"))
    assert EngineConfig.for_device("cuda").batch_size == 16 and EngineConfig.for_device("cpu").batch_size == 4
    assert resolve({"batch_size": "auto"}, env={}, path=Path("/nonexistent.toml")).batch_size_number is None


def test_prefetch_keeps_order_bounds_its_queue_and_passes_errors_on():
    running, most, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01 * (i % 3))
        with lock:
            running[0] -= 1
        if i == 5:
            raise ConfigError("five")
        return i * i

    source = Prefetch(list(range(12)), work, workers=3, depth=4, catch=(ConfigError,))
    seen = []
    for i, result in source:
        assert source.submitted - source.taken <= 4  # never more than `depth` waiting or being decoded
        seen.append((i, result if not isinstance(result, ConfigError) else "error"))
    assert seen == [(i, "error" if i == 5 else i * i) for i in range(12)]
    assert most[0] <= 3


def test_prefetch_in_processes_runs_elsewhere_and_sends_tensors_and_errors_back():
    import os

    import torch

    def work(i: int):
        if i == 2:
            raise ConfigError("two")
        return os.getpid(), torch.full((3,), i)

    source = Prefetch(list(range(5)), work, workers=2, depth=3, catch=(ConfigError,), processes=True)
    try:
        results = list(source)
    finally:
        source.close()
    assert [i for i, _ in results] == list(range(5)) and str(results[2][1]) == "two"
    assert all(r[0] != os.getpid() and r[1].tolist() == [i] * 3 for i, r in results if i != 2)


def test_in_order_writes_up_to_the_first_gap_and_flush_keeps_the_rest():
    written = []
    order = InOrder(written.append)
    for i in (2, 0, 3):
        order.add(i, i)
    assert written == [0]
    order.flush()
    assert written == [0, 2, 3]
