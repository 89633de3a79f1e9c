"""Decoding on a static cache (and compiled) gives the eager path's tokens; the mode is chosen per device."""

from __future__ import annotations

import pytest

from clapper_core.generation import GenerationConfig, VideoSession
from clapper_core.hardware import decoding_mode

QUESTIONS = ("Describe this video in detail.", "What colour is the shape?")


def _conversation(loaded, frames, decoding: str, new_tokens: int = 20) -> list[str]:
    """Two questions on one session, then a follow-up turn: the prefix cache is reused throughout."""
    session = VideoSession(loaded, frames=frames[0], timestamps=frames[1], decoding=decoding)
    gen = GenerationConfig(max_new_tokens=new_tokens)
    answers = [session.ask(q, gen) for q in QUESTIONS]
    answers.append(session.ask("And then?", gen, history=[(QUESTIONS[0], answers[0])]))
    return answers


def test_a_static_cache_decodes_what_the_growing_one_does(tiny_loaded, tiny_frames):
    assert _conversation(tiny_loaded, tiny_frames, "static") == _conversation(tiny_loaded, tiny_frames, "eager")


@pytest.mark.slow
def test_the_compiled_step_decodes_what_the_eager_one_does(tiny_loaded, tiny_frames):
    # on the CPU torch.compile builds an Inductor kernel (no CUDA graph), through the same code path
    assert _conversation(tiny_loaded, tiny_frames, "compiled") == _conversation(tiny_loaded, tiny_frames, "eager")


def test_a_failing_compile_falls_back_to_the_same_answer(tiny_loaded, tiny_frames, monkeypatch, caplog):
    from clapper_core.engine import static

    real_init = static.StaticDecoder.__init__

    def broken_compile(self, model, *, length, compiled):
        real_init(self, model, length=length, compiled=compiled)
        if compiled:
            def fail(*args):
                raise RuntimeError("no compiler for this device")
            self._step = fail

    monkeypatch.setattr(static.StaticDecoder, "__init__", broken_compile)
    monkeypatch.delattr(tiny_loaded.model, "_clapper_static_decoder", raising=False)  # one an earlier test built
    with caplog.at_level("WARNING", logger="clapper"):
        answers = _conversation(tiny_loaded, tiny_frames, "compiled")
    assert answers == _conversation(tiny_loaded, tiny_frames, "eager")
    assert "compiled decoding failed (RuntimeError: no compiler for this device)" in caplog.text


def test_compiled_decoding_on_cuda_in_a_warm_process_or_when_asked(monkeypatch):
    monkeypatch.delenv("CLAPPER_EAGER", raising=False)
    monkeypatch.delenv("CLAPPER_COMPILE", raising=False)
    assert decoding_mode("cuda", warm=True) == "compiled" and decoding_mode("cuda:1", warm=True) == "compiled"
    assert decoding_mode("cuda") == "eager"  # one `clapper ask` would spend longer compiling than decoding
    assert decoding_mode("cpu", warm=True) == "eager"
    monkeypatch.setenv("CLAPPER_COMPILE", "1")
    assert decoding_mode("cuda") == "compiled" and decoding_mode("cpu") == "eager"
    monkeypatch.setenv("CLAPPER_EAGER", "1")
    assert decoding_mode("cuda", warm=True) == "eager"
