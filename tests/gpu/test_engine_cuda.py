"""The engine and the compiled decoding step on CUDA. Skipped without a GPU; on one: python -m pytest tests/gpu -q"""

from __future__ import annotations

import pytest
import torch

from clapper_core.engine import Engine, EngineConfig, Work
from clapper_core.generation import GenerationConfig, VideoSession
from clapper_core.model import LoadConfig, load_model
from clapper_core.video import SamplingConfig, load_clip
from tests.train.test_demo_model import fresh_videos

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return fresh_videos(tmp_path_factory.mktemp("fresh"))


@pytest.fixture(scope="module")
def demo_cuda():
    return load_model(LoadConfig(model="clapper-demo", device="cuda", quant="fp32"))


def test_compiled_decoding_on_cuda_gives_the_eager_tokens(demo_cuda, fresh):
    gen = GenerationConfig(max_new_tokens=32)
    for video in fresh[:4]:
        question = video.qas[0].question
        clip = load_clip(video.path, SamplingConfig(fps=1.0))
        eager = VideoSession(demo_cuda, clip, decoding="eager")
        graph = VideoSession(demo_cuda, clip, decoding="compiled")
        assert graph.ask(question, gen) == eager.ask(question, gen)
        assert graph.decoding == "compiled"  # it did not fall back


def test_a_batch_of_16_on_cuda_answers_as_one_at_a_time(demo_cuda, fresh):
    works = [Work(str(v.path), [v.qas[0].question, "Describe this video in detail."]) for v in fresh]

    def answers(batch_size):
        engine = Engine(demo_cuda, EngineConfig(batch_size=batch_size), SamplingConfig(fps=1.0),
                        GenerationConfig(max_new_tokens=32), model="clapper-demo")
        return {(d.work, d.question): d.record.answer for d in engine.run(works)}

    assert answers(16) == answers(1)
