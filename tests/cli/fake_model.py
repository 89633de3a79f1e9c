"""A stand-in model behind `clapper_core.runner`: real video decoding, canned streaming answers.

CLI tests use it to check streaming, resume, failures and exit codes quickly, without
weights; the tests in test_tiny_model.py run the same commands on a real tiny model.

    install()                                   # in-process (CliRunner), via monkeypatch or directly
    python -m tests.cli.fake_cli caption ...    # the `clapper` command with the stand-in installed

`CLAPPER_TEST_TOKEN_DELAY` (seconds) slows each generated piece down, so a test can catch a
run part-way through.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from clapper_core.errors import ModelError
from clapper_core.model.tokens import DEFAULT_COSTS


@dataclass(frozen=True)
class FakeHardware:
    device: str = "cpu"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    quant: str = "fp32"

    def describe(self) -> str:
        return "cpu, float32, sdpa attention"


@dataclass
class FakeLoaded:
    model: object = None
    processor: object = None
    hardware: FakeHardware = FakeHardware()
    source: str = "fake"
    notices: tuple[str, ...] = ("fake model: answers are canned",)


@dataclass(frozen=True)
class FakeStats:
    prefill_s: float
    generate_s: float
    new_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.generate_s if self.generate_s > 0 else 0.0


def answer_for(question: str, frames: int) -> str:
    """The canned answer: depends on the question and the clip, so tests can check both."""
    return f"Saw {frames} frames; asked: {question}"


class FakeSession:
    def __init__(self, loaded, clip) -> None:
        self.clip = clip
        self.encode_s = 0.001
        self.num_visual_tokens = DEFAULT_COSTS.count(clip.segment_sizes)
        self.last_stats = None

    streams = 0  # answers started in this process

    def stream(self, question, gen=None, *, history=()):  # canned: the answer ignores earlier turns
        delay = float(os.environ.get("CLAPPER_TEST_TOKEN_DELAY", "0"))
        FakeSession.streams += 1
        stall_after = os.environ.get("CLAPPER_TEST_STALL_AFTER")
        if stall_after is not None and FakeSession.streams > int(stall_after):
            delay = 60.0  # every later answer stalls, so a signal sent after the first ones lands mid-answer
        words = answer_for(question, self.clip.num_frames).split(" ")
        start = time.perf_counter()
        for i, word in enumerate(words):
            if delay:
                time.sleep(delay)
            yield word if i == 0 else " " + word
        self.last_stats = FakeStats(prefill_s=0.001, generate_s=time.perf_counter() - start, new_tokens=len(words))


@dataclass
class FakePrepared:
    clip: object
    tokens: int | None = None

    @property
    def num_visual_tokens(self) -> int:
        return self.tokens if self.tokens is not None else DEFAULT_COSTS.count(self.clip.segment_sizes)


class FakeBackend:
    """The engine's model side, canned: each row gives one word of `answer_for` per step."""

    def __init__(self, loaded, config) -> None:
        self.capacity = config.batch_size
        self.waiting: list[list] = []
        self.running: list[list] = []  # [key, words, taken, started]

    @property
    def free(self) -> int:
        return self.capacity - len(self.running) - len(self.waiting)

    @property
    def rows(self) -> int:
        return len(self.running)

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def prepare(self, clip):
        return FakePrepared(clip)

    def answer(self, question: str, clip) -> str:
        return answer_for(question, clip.num_frames)

    def encode(self, prepared):
        return [None] * len(prepared)

    def add(self, items, features):
        for key, prepared, question, gen in items:
            self.waiting.append([key, (question, prepared.clip), 0, 0.0])

    def step(self):
        from clapper_core.engine.backend import Answer

        while self.waiting and len(self.running) < self.capacity:
            row = self.waiting.pop(0)
            row[1] = self.answer(*row[1]).split(" ")  # answered when its row starts, as a model would
            row[3] = time.perf_counter()
            FakeSession.streams += 1
            row.append(FakeSession.streams)
            self.running.append(row)
        delay = float(os.environ.get("CLAPPER_TEST_TOKEN_DELAY", "0"))
        stall_after = os.environ.get("CLAPPER_TEST_STALL_AFTER")
        # rows started after the first `stall_after` never advance, so a signal sent once those are saved
        # lands while the others are still generating
        moving = [row for row in self.running if stall_after is None or row[4] <= int(stall_after)]
        if not moving:
            delay = 60.0
        if delay:
            time.sleep(delay)
        done = []
        for row in moving:
            row[2] += 1
            if row[2] == len(row[1]):
                self.running.remove(row)
                done.append(Answer(key=row[0], text=" ".join(row[1]), new_tokens=len(row[1]), stopped=True,
                                   prompt_tokens=0, prefill_s=0.001, generate_s=time.perf_counter() - row[3]))
        return done


def fake_load_model(config):
    if config.model.startswith("missing"):
        raise ModelError(f"no model at {config.model}: check the path or the Hugging Face id")
    return FakeLoaded()


def install(monkeypatch=None) -> None:
    """Put the stand-in behind `clapper_core.runner` (undone at test end when given `monkeypatch`)."""
    from clapper_core import runner

    for name, value in (("_load_model", fake_load_model), ("_open_session", FakeSession),
                        ("_open_backend", FakeBackend)):
        if monkeypatch is not None:
            monkeypatch.setattr(runner, name, value)
        else:
            setattr(runner, name, value)
