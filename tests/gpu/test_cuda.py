"""The CUDA paths: bf16 and 4-bit loading, SDPA when flash-attn is missing, generation, bf16-autocast training.

Every test here needs a CUDA GPU and is skipped without one (CI has none). On a GPU machine:

    python -m pytest tests/gpu -q
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clapper_core.generation import VideoSession
from clapper_core.model import LoadConfig, load_model
from tests.train.test_demo_model import colour_and_direction_right, fresh_videos

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

FLASH = importlib.util.find_spec("flash_attn") is not None
REPO = Path(__file__).resolve().parents[2]


def _prefix_logits(loaded, frames, timestamps, question="what happens?"):
    """The video features (N, D) and the first answer token's logits (V,), both float32 on the CPU."""
    session = VideoSession(loaded, frames=frames, timestamps=timestamps)
    with torch.inference_mode():
        session._forward(list(session.video.prefix_ids), with_video=True)
        logits = session._forward(session.processor.question_ids(question), with_video=False)
    return session.video_features.float().cpu(), logits.float().cpu()


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


def test_bf16_on_cuda_computes_what_fp32_on_the_cpu_does(tiny_model_dir, tiny_loaded, tiny_frames):
    gpu = load_model(LoadConfig(model=str(tiny_model_dir), device="cuda"))
    hw = gpu.hardware
    assert (hw.device, hw.dtype, hw.quant) == ("cuda", "bfloat16", "bf16")
    assert hw.attn_implementation == ("flash_attention_2" if FLASH else "sdpa")  # SDPA when flash-attn is missing
    assert gpu.model.config.text_config._attn_implementation == hw.attn_implementation
    floats = [p for p in gpu.model.parameters() if p.is_floating_point()]
    assert all(p.device.type == "cuda" and p.dtype == torch.bfloat16 for p in floats)

    feats_gpu, logits_gpu = _prefix_logits(gpu, *tiny_frames)
    feats_cpu, logits_cpu = _prefix_logits(tiny_loaded, *tiny_frames)
    assert feats_gpu.shape == feats_cpu.shape
    assert _rel(feats_gpu, feats_cpu) < 3e-2  # bf16 operands: about 1e-2 of rounding, no more
    assert _rel(logits_gpu, logits_cpu) < 3e-2


def test_four_bit_on_cuda_quantizes_the_llm_only_and_stays_close(tiny_model_dir, tiny_loaded, tiny_frames):
    pytest.importorskip("bitsandbytes")
    q = load_model(LoadConfig(model=str(tiny_model_dir), device="cuda", quant="4bit"))
    assert (q.hardware.quant, q.hardware.dtype, q.hardware.device) == ("4bit", "bfloat16", "cuda")
    lm = q.model.model.language_model
    assert type(lm.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert lm.layers[0].self_attn.q_proj.weight.device.type == "cuda"
    assert type(q.model.model.multi_modal_projector.linear_1) is torch.nn.Linear  # kept out of 4-bit
    assert q.model.model.multi_modal_projector.linear_1.weight.dtype == torch.bfloat16

    feats_q, logits_q = _prefix_logits(q, *tiny_frames)
    feats_cpu, logits_cpu = _prefix_logits(tiny_loaded, *tiny_frames)
    assert _rel(feats_q, feats_cpu) < 3e-2  # the vision side is not quantized
    assert _rel(logits_q, logits_cpu) < 0.5  # NF4 weights: close, not equal
    assert torch.corrcoef(torch.stack([logits_q, logits_cpu]))[0, 1] > 0.9


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    return fresh_videos(tmp_path_factory.mktemp("fresh"))


@pytest.mark.parametrize("quant", ["bf16", "4bit"])
def test_demo_model_on_cuda_answers_colour_and_direction(quant, fresh):
    """The same bars as the CPU demo test (tests/train/test_demo_model.py), in bf16 and in 4-bit."""
    if quant == "4bit":
        pytest.importorskip("bitsandbytes")
    demo = load_model(LoadConfig(model="clapper-demo", device="cuda", quant=quant))
    right = colour_and_direction_right(demo, fresh)
    assert right["colour"] >= 7 and right["direction"] >= 10, right


def test_training_on_cuda_under_bf16_autocast_reduces_the_loss(quick_config):
    from clapper_core.train import read_metrics, train

    cfg = quick_config(stage=2, steps=12, lr=5e-3, device="cuda", gradient_checkpointing=True)
    result = train(cfg)
    losses = [r["loss"] for r in read_metrics(cfg.output / "metrics.jsonl")]
    assert result.steps == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    saved = load_model(LoadConfig(model=str(cfg.output), device="cpu"))  # master weights stay float32
    assert all(p.dtype == torch.float32 for p in saved.model.parameters() if p.is_floating_point())


def test_cli_ask_runs_on_cuda(fresh):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    video = fresh[0]
    question = next(qa for qa in video.qas if qa.family == "colour")
    proc = subprocess.run(
        [sys.executable, "-m", "clapper_cli.main", "ask", str(video.path), question.question, "--device", "cuda",
         "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["answer"].strip() and (record["device"], record["precision"]) == ("cuda", "bf16"), record
    assert "visual tokens · cuda bf16 · decode" in proc.stderr, proc.stderr  # where it ran, on the timings line
