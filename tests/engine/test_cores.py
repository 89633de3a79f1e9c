"""The engine shares the CPU's cores between its decode workers and the model, and joins rows in groups."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import clapper_core.engine.cores as cores
from clapper_core.engine import Engine, EngineConfig, Work
from clapper_core.engine.cores import CoreShare
from clapper_core.errors import ConfigError
from clapper_core.generation import GenerationConfig
from clapper_core.video import SamplingConfig
from tests.cli.fake_model import FakeBackend, FakeLoaded
from tests.fixtures.video import make_video

PROMPT = "Describe this video in detail."


@pytest.fixture
def four_cores(monkeypatch):
    """A machine of 4 cores on which torch runs 3 threads; torch's setting is put back after the test."""
    before = torch.get_num_threads()
    monkeypatch.setattr(cores, "usable_cores", lambda: 4)
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("cores")
    return [make_video(root / f"v{i}.mp4", frames=10 * (1 + i % 4), fps=10, size=(48, 32)) for i in range(12)]


@pytest.mark.parametrize(("decode_s", "encode_s", "threads"), [
    (0.030, 0.010, 2),  # decoding costs more than encoding: the 2 workers get a core each, the model the other 2
    (0.001, 0.010, 2),  # a tenth of encoding's time or more still counts
    (0.0009, 0.010, 3),  # decoding is cheap beside the model: torch keeps its threads
])
def test_the_first_encode_pass_decides_the_model_threads(four_cores, decode_s, encode_s, threads):
    with CoreShare(None, 2, on_cpu=True) as share:
        share.encoded(decode_s, encode_s)
        assert torch.get_num_threads() == threads
        share.encoded(1.0, 0.0)  # decided once: later passes change nothing
        assert torch.get_num_threads() == threads
        assert f"the model runs on {threads} torch threads" in share.decision
    assert torch.get_num_threads() == 3  # torch's setting is back after the run


def test_cores_are_left_alone_on_a_gpu_without_workers_or_when_told(four_cores):
    for share in (CoreShare(None, 2, on_cpu=False), CoreShare(None, 0, on_cpu=True), CoreShare(0, 2, on_cpu=True)):
        with share:
            share.encoded(1.0, 0.001)
            assert torch.get_num_threads() == 3 and not share.decision
    with CoreShare(1, 2, on_cpu=False) as share:  # a fixed count holds anywhere, for the run only
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    with pytest.raises(ConfigError, match="model_threads=-1"):
        EngineConfig(model_threads=-1)


class _Slow(FakeBackend):
    """Decoding takes 20 ms of CPU a video, encoding nothing; records the torch threads each step runs with, and the
    size of every encode pass."""

    def __init__(self, loaded, config) -> None:
        super().__init__(loaded, config)
        self.threads, self.groups = [], []

    def prepare(self, clip):
        end = time.thread_time() + 0.02
        while time.thread_time() < end:  # CPU time, as decoding takes it: a sleep would not count
            pass
        return super().prepare(clip)

    def encode(self, prepared):
        self.groups.append(len(prepared))
        return super().encode(prepared)

    def step(self):
        self.threads.append(torch.get_num_threads())
        return super().step()


def _run(videos, config: EngineConfig) -> _Slow:
    backend = _Slow(None, config)
    engine = Engine(FakeLoaded(), config, SamplingConfig(fps=1.0), GenerationConfig(), model="test", backend=backend)
    done = list(engine.run([Work(str(v), [PROMPT]) for v in videos]))
    assert sorted(d.work for d in done) == list(range(len(videos))) and all(d.record.ok for d in done)
    return backend


def test_a_decode_bound_run_gives_its_workers_the_cores_and_then_gives_them_back(four_cores, videos):
    backend = _run(videos, EngineConfig(batch_size=4, decode_workers=2))
    assert set(backend.threads) == {2}  # decided before the first step: 4 cores less 2 workers
    assert torch.get_num_threads() == 3
    backend = _run(videos, EngineConfig(batch_size=4, decode_workers=2, model_threads=0))
    assert set(backend.threads) == {3}


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_join_in_groups_of_the_refill_size_while_videos_decode_slowly(videos, workers):
    """With decoding slower than the model, a running batch does not let in each video as it comes: it waits until
    `join_at` are decoded (and places free), so every encode pass but the last takes at least that many."""
    config = EngineConfig(batch_size=8, decode_workers=workers, refill=4)
    groups = _run(videos, config).groups
    assert sum(groups) == 12 and all(n >= 4 for n in groups[:-1]), groups


def test_decode_workers_of_every_local_process_split_the_cores(monkeypatch):
    """The engine's decode workers and a training DataLoader's take FFmpeg threads from one rule."""
    import clapper_core.hardware as hardware
    from clapper_core.train.data import ClipCache

    monkeypatch.setattr(hardware, "usable_cores", lambda: 8)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert [hardware.decode_threads(w) for w in (0, 1, 2, 3, 16)] == [0, 8, 4, 2, 1]
    assert EngineConfig(decode_workers=2).decode_threads == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes on this machine, two workers each
    assert hardware.decode_threads(2) == 2 and EngineConfig(decode_workers=2).decode_threads == 2
    import clapper_core.video as video

    asked = []
    monkeypatch.setattr(video, "load_clip", lambda path, sampling, threads=0: asked.append(threads))
    ClipCache(SamplingConfig(), threads=hardware.decode_threads(2)).get("any.mp4")  # as training builds it
    assert asked == [2]
