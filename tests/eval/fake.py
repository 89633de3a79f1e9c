"""A stand-in model for evaluation tests: real decoding, answers read from the question.

A question containing `say:<text>` is answered `<text>` (underscores become spaces), so a
test decides what the "model" answers: a letter, a sentence, nothing parseable. The model
config is the standard layout (196 keyframe + 49 perceiver tokens per 4-frame segment).

    python -m tests.eval.fake BENCH OUTDIR [--frames N | --budget N]   # one run, for multi-process tests
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

from tests.cli.fake_model import FakeBackend as _CannedBackend
from tests.cli.fake_model import FakeHardware, FakeStats


def standard_config():
    from clapper_core.model.configuration_clapper import ClapperConfig

    return ClapperConfig(text_config={"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                                      "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100})


@dataclass
class _Model:
    config: object = field(default_factory=standard_config)


@dataclass
class FakeLoaded:
    model: _Model = field(default_factory=_Model)
    processor: object = None
    hardware: FakeHardware = FakeHardware()
    source: str = "fake"
    notices: tuple[str, ...] = ()


class FakeSession:
    asked = 0  # questions asked in this process; `CLAPPER_TEST_STOP_AFTER` interrupts after that many

    def __init__(self, loaded, clip) -> None:
        from clapper_core.model.configuration_clapper import visual_token_count

        self.clip = clip
        self.encode_s = 0.001
        self.num_visual_tokens = visual_token_count(loaded.model.config, [s.num_frames for s in clip.segments])
        self.last_stats = None

    def ask(self, prompt, gen=None) -> str:
        stop = os.environ.get("CLAPPER_TEST_STOP_AFTER")
        if stop is not None and FakeSession.asked >= int(stop):
            raise KeyboardInterrupt
        FakeSession.asked += 1
        m = re.search(r"say:(\S+)", prompt)
        self.last_stats = FakeStats(prefill_s=0.001, generate_s=0.002, new_tokens=3)
        return m.group(1).replace("_", " ") if m else "I do not know."


class FakeBackend(_CannedBackend):
    """The engine's model side for evaluation: every answer is what `FakeSession.ask` says, in one step."""

    def __init__(self, loaded, config) -> None:
        super().__init__(loaded, config)
        self.config = loaded.model.config

    def prepare(self, clip):
        from clapper_core.model.configuration_clapper import visual_token_count

        prepared = super().prepare(clip)
        prepared.tokens = visual_token_count(self.config, [s.num_frames for s in clip.segments])
        return prepared

    def answer(self, question: str, clip) -> str:
        return FakeSession.ask(self, question).replace(" ", "_")  # one word: answered in one step

    def step(self):
        done = super().step()
        for answer in done:
            answer.text = answer.text.replace("_", " ")
        return done


def install(monkeypatch=None) -> None:
    from clapper_core import runner

    for name, value in (("_load_model", lambda config: FakeLoaded()), ("_open_session", FakeSession),
                        ("_open_backend", FakeBackend)):
        if monkeypatch is not None:
            monkeypatch.setattr(runner, name, value)
        else:
            setattr(runner, name, value)


def fake_settings(**flags):
    from pathlib import Path

    from clapper_core.settings import resolve

    return resolve({"model": "fake-model", **flags}, env={}, path=Path("/nonexistent/clapper.toml"))


def main(argv: list[str]) -> int:
    from clapper_core.eval import EvalOptions, evaluate, load_benchmark

    install()
    bench, out, kind, n = argv
    options = EvalOptions(frames=int(n)) if kind == "--frames" else EvalOptions(max_visual_tokens=int(n))
    settings = fake_settings()
    report = evaluate(load_benchmark(bench), settings, options, output_dir=out)
    print("merged" if report is not None else "part")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
