"""`clapper ask` on a Qwen2-7B-shaped Clapper checkpoint, bf16 against 4-bit, through the real loader (CUDA only).

Writes a Clapper of SigLIP-so400m-384 + Qwen2-7B shapes with random weights to disk in bf16 (about 15 GiB),
then runs the real command on a 100-second generated video (1 fps: 96 frames, 24 segments) as a fresh process
per precision, `--quant bf16` then `--quant 4bit`, while sampling the GPU memory in use (nvidia-smi, CUDA context
included). Each row is one cold process, as a user runs it: the first call of each kernel is in its timings.

    python bench/ask_7b.py [--work /tmp/clapper-7b-random] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.e2e import PeakSampler, make_video  # noqa: E402


def write_checkpoint(out: Path) -> float:
    """A random Qwen2-7B-shaped Clapper saved in bf16 with a small tokenizer; returns its size in GiB."""
    import torch

    from clapper_core.model.loading import _quiet_transformers
    from clapper_core.model.processing_clapper import ClapperProcessor
    from clapper_core.model.tiny import TINY_TEXTS, random_model, real_shape_config
    from clapper_core.model.tokenizer import VIDEO_TOKEN, build_small_tokenizer

    tok = build_small_tokenizer(TINY_TEXTS, vocab_size=400)
    config = real_shape_config("7b", video_token_id=tok.convert_tokens_to_ids(VIDEO_TOKEN))
    model = random_model(config, dtype=torch.bfloat16, device="cuda")
    model.generation_config.eos_token_id = [tok.eos_token_id]
    with _quiet_transformers():
        model.save_pretrained(str(out))
    ClapperProcessor(tok, config).save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**30


def gpu_used_mib() -> int:
    """The GPU memory in use (MiB) by every process, as nvidia-smi reads it."""
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def ask(model: Path, video: Path, quant: str, new_tokens: int) -> dict:
    cmd = [sys.executable, "-m", "clapper_cli.main", "ask", str(video), "What happens in this video?", "-m", str(model),
           "--quant", quant, "--device", "cuda", "--max-new-tokens", str(new_tokens), "--json"]
    idle = gpu_used_mib()
    t = time.perf_counter()
    with PeakSampler(gpu_used_mib, 0.2) as mem:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"clapper ask --quant {quant} failed:\n{proc.stderr[-2000:]}")
    record = json.loads(proc.stdout)
    return {"quant": quant, "wall_s": time.perf_counter() - t, "peak_mib": int(mem.peak) - idle, **record["timings"],
            "frames": record["frames"], "visual_tokens": record["visual_tokens"], "new_tokens": record["new_tokens"]}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="where the checkpoint goes (default: a temporary folder)")
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/ask_7b.py needs a CUDA GPU (about 20 GiB free) and 16 GiB of disk")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.work or Path(tmp) / "clapper-7b-random"
        t = time.perf_counter()
        size = write_checkpoint(model)
        print(f"random 7B-shaped checkpoint: {size:.1f} GiB of bf16 safetensors, written in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        video = make_video(Path(tmp) / "long.mp4", seconds=100, fps=10)
        rows = [ask(model, video, quant, args.new_tokens) for quant in ("bf16", "4bit")]
    print(f"{'quant':<6}{'frames':>7}{'vis tok':>8}{'wall s':>8}{'decode s':>9}{'encode s':>9}{'prefill s':>10}"
          f"{'generate s':>11}{'new tok':>8}{'GPU MiB':>9}")
    for r in rows:
        print(f"{r['quant']:<6}{r['frames']:>7}{r['visual_tokens']:>8,}{r['wall_s']:>8.1f}{r['decode_s']:>9.2f}"
              f"{r['encode_s']:>9.2f}{r['prefill_s']:>10.2f}{r['generate_s']:>11.2f}{r['new_tokens']:>8}"
              f"{r['peak_mib']:>9,}")
    bf16, q4 = rows
    print(f"bf16 / 4-bit: peak GPU memory {bf16['peak_mib'] / q4['peak_mib']:.2f}x, "
          f"wall time {bf16['wall_s'] / q4['wall_s']:.2f}x (one cold process each)")


if __name__ == "__main__":
    main()
