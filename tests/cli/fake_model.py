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


def fake_load_model(config):
    if config.model.startswith("missing"):
        raise ModelError(f"no model at {config.model}: check the path or the Hugging Face id")
    return FakeLoaded()


def install(monkeypatch=None) -> None:
    """Put the stand-in behind `clapper_core.runner` (undone at test end when given `monkeypatch`)."""
    from clapper_core import runner

    for name, value in (("_load_model", fake_load_model), ("_open_session", FakeSession)):
        if monkeypatch is not None:
            monkeypatch.setattr(runner, name, value)
        else:
            setattr(runner, name, value)
