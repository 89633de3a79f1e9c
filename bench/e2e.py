"""End to end, per stage: decode, vision, TimePerceiver, prefill, decoding speed and peak memory,
Clapper against the LLaVA-OneVision video layout (196 tokens per frame) on the same backbone.

    python bench/e2e.py                       # CPU: SigLIP-so400m-384 + Qwen2-0.5B, 16 frames
    python bench/e2e.py --frames 8 --new-tokens 8
    python bench/e2e.py --skip-cpu --skip-4bit --frames 96 --new-tokens 64   # GPU: 7B bf16, eager vs compiled

Weights are random at the real shapes (speed and memory do not depend on their values). Both
layouts share one model and one SigLIP pass (they run SigLIP on the same frames); each layout's
projection, prefill and decoding then run in turn while a sampler records the process's peak
resident memory (weights included) and the rise above what was resident before the layout ran.
Each layout runs once to warm up (kernel choice, allocations), then --repeats times; stage timings are
the medians of those, the CPU memory figures are the warm-up pass's (it is the one that allocates). With a
CUDA GPU the same runs for Qwen2-7B in bf16 and 4-bit (peak = CUDA allocated, reset for every pass), and a
row Clapper* decodes as `clapper ask` does on CUDA: a static cache and a compiled step (CUDA graphs).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_video(path: Path, seconds: int = 16, fps: int = 25, size=(640, 360)) -> Path:
    """A moving-gradient H.264 video, written with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        x = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
        for i in range(seconds * fps):
            img = np.broadcast_to((x + 4 * i) % 256, (size[1], size[0], 3)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, *args, device="cpu"):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()  # nothing queued earlier is counted
    t = time.perf_counter()
    out = fn(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def run_layout(model, processor, patches, clip, layout: str, new_tokens: int, device: str,
               decoding: str = "eager") -> dict:
    """Project, prefill and decode for one layout; returns its stage timings and peak memory."""
    import torch

    from clapper_core.generation import GenerationConfig, VideoSession
    from clapper_core.hardware import HardwareChoice
    from clapper_core.model.loading import LoadedModel
    from clapper_core.model.tokenizer import IM_START

    torch.set_grad_enabled(False)
    m = model.model
    T = patches.shape[0]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stats = {"layout": layout}
    if layout == "Clapper":
        sizes = processor.segment_sizes(T)
        starts = list(range(0, T, model.config.segment_size))
        fast = [i for i, n in enumerate(sizes) if n >= 2]
        _, stats["perceiver_s"] = _timed(m.get_segment_features, patches, starts, list(sizes), fast, device=device)
        feats, stats["project_s"] = _timed(m.encode_segments, patches, list(sizes), device=device)
        stats["project_s"] -= stats["perceiver_s"]  # encode_segments runs the perceiver again
    else:  # LLaVA-OneVision: every frame a keyframe, 196 tokens, no fast path
        sizes = (1,) * T
        stats["perceiver_s"] = 0.0
        feats, stats["project_s"] = _timed(
            lambda p: m.pool_keyframes(m.multi_modal_projector(p)), patches, device=device
        )
        feats = feats.flatten(0, 1)
    stats["visual_tokens"] = int(feats.shape[0])

    # A session over precomputed features: the prompt is laid out for this layout's segments.
    session = VideoSession.__new__(VideoSession)
    hw = HardwareChoice(device=device, dtype=str(model.dtype).removeprefix("torch."), attn_implementation="sdpa",
                        quant="-")
    session.loaded = LoadedModel(model, processor, hw, "random", [])
    session.model, session.processor, session.device = model, processor, m.get_input_embeddings().weight.device
    starts_t = tuple(clip.timestamps[i] for i in np.cumsum((0,) + tuple(sizes[:-1])))
    timestamps = processor.config.segment_timestamps and layout == "Clapper"
    prefix = processor.prefix_ids(sizes, starts_t if timestamps else None)
    if layout != "Clapper":  # 196 placeholders per frame, no timestamps
        head = processor.prefix_ids([], None)
        prefix = head + [processor.video_token_id] * stats["visual_tokens"]
    session.video = type("V", (), {"prefix_ids": tuple(prefix)})()
    session.video_features, session._cache, session._prefix_len, session._tail = feats, None, len(prefix), []
    session.stop_ids, session.last_stats = set(), None  # random weights: always decode new_tokens
    session.decoding = decoding  # "eager" (growing cache) or "compiled" (static cache, CUDA graphs)
    session._turn_start = processor.tokenizer.convert_tokens_to_ids(IM_START)
    session.ask("What happens in this video?", GenerationConfig(max_new_tokens=new_tokens))
    s = session.last_stats
    stats.update(prompt_tokens=s.prompt_tokens, prefill_s=s.prefill_s, tokens_per_s=s.tokens_per_s)
    if device == "cuda":
        stats["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        stats["extra_mb"] = stats["peak_mb"] - torch.cuda.memory_allocated() / 2**20
    return stats


class PeakSampler:
    """Calls `measure()` every `interval` seconds while active (and once more at the end); `.peak` is the highest."""

    def __init__(self, measure, interval: float):
        import threading

        self.measure, self.interval, self.peak = measure, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


class PeakRSS(PeakSampler):
    """This process's resident memory (MB), sampled every 5 ms; `.peak_mb` is the highest seen."""

    def __init__(self):
        super().__init__(self.now_mb, 0.005)

    @staticmethod
    def now_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    @property
    def peak_mb(self) -> float:
        return self.peak


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench(llm: str, quant: str, device: str, frames: int, new_tokens: int, video: Path, repeats: int = 3,
          compiled: bool = True) -> list[dict]:
    import torch

    from clapper_core.model.processing_clapper import ClapperProcessor
    from clapper_core.model.tiny import TINY_TEXTS, random_model, real_shape_config
    from clapper_core.model.tokenizer import VIDEO_TOKEN, build_small_tokenizer
    from clapper_core.video import SamplingConfig, load_clip

    tok = build_small_tokenizer(TINY_TEXTS, vocab_size=400)
    config = real_shape_config(llm, video_token_id=tok.convert_tokens_to_ids(VIDEO_TOKEN))
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    _log(f"building SigLIP-so400m + Qwen2-{llm} with random weights ({quant}, {device})")
    t = time.perf_counter()
    model = random_model(config, dtype=dtype, device=device)
    if quant == "4bit":
        model = _to_4bit(model)
    build_s = time.perf_counter() - t
    processor = ClapperProcessor(tok, config)
    torch.set_grad_enabled(False)

    _log(f"decoding {frames} frames, SigLIP on each")
    clip, decode_s = _timed(load_clip, video, SamplingConfig(num_frames=frames))
    pixels, pre_s = _timed(processor.preprocess_frames, clip.frames)
    pixels = pixels.to(device, dtype)
    model.model.get_frame_patches(pixels[:1])  # warm-up: the first call pays for kernel choice
    patches, vision_s = _timed(model.model.get_frame_patches, pixels, device=device)
    shared = {"decode_s": decode_s, "vision_s": vision_s + pre_s, "weights_mb": _rss_mb(), "build_s": build_s}

    # Warm-up (first-call kernel selection and allocations) so neither layout pays for it.
    D = config.text_config.hidden_size
    model.model.language_model(inputs_embeds=torch.zeros(1, 8, D, dtype=dtype, device=device))
    rows = []
    # on CUDA, Clapper's decoding also as `clapper ask` runs it there: static cache, compiled step (CUDA graphs)
    ways = [("Clapper", "eager"), ("LLaVA-OV", "eager")] + [("Clapper", "compiled")] * (compiled and device == "cuda")
    for layout, decoding in ways:
        _log(f"running the {layout} layout ({decoding} decoding): one warm-up pass, then {repeats} timed")
        with PeakRSS() as rss:  # the first pass allocates (and compiles): the CPU memory figures are its own
            base = rss.now_mb()
            run_layout(model, processor, patches, clip, layout, new_tokens, device, decoding)
        runs = [run_layout(model, processor, patches, clip, layout, new_tokens, device, decoding)
                for _ in range(repeats)]
        row = _median_row(runs)
        row["layout"] = layout if decoding == "eager" else f"{layout}*"
        if device == "cpu":
            row["peak_mb"], row["extra_mb"] = rss.peak_mb, rss.peak_mb - base
        rows.append({**shared, **row, "setup": f"{llm} {quant} {device}"})
    return rows


def _median_row(runs: list[dict]) -> dict:
    """Each timing the median over the runs; counts and memory from the first (they do not change)."""
    row = dict(runs[0])
    for key in ("perceiver_s", "project_s", "prefill_s", "tokens_per_s"):
        row[key] = float(np.median([r[key] for r in runs]))
    return row


def _to_4bit(model):
    """Quantize the LLM's linear layers to NF4 in place (vision, perceiver, projector, lm_head stay)."""
    import bitsandbytes as bnb
    import torch

    lm = model.model.language_model
    for name, mod in list(lm.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.Linear):
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.bfloat16, quant_type="nf4")  # fmt: skip
                q.weight = bnb.nn.Params4bit(child.weight.data.cpu(), requires_grad=False, quant_type="nf4")
                if child.bias is not None:
                    q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(mod, child_name, q.to(child.weight.device))
    torch.cuda.empty_cache()
    return model


def print_rows(rows: list[dict], frames: int) -> None:
    print(f"\n{rows[0]['setup']}: {frames} frames, weights built in {rows[0]['build_s']:.0f} s")
    print(f"{'layout':<9} {'vis tok':>7} {'decode s':>8} {'vision s':>8} {'TimeP s':>7} {'proj s':>6} "
          f"{'prompt':>6} {'prefill s':>9} {'tok/s':>6} {'peak MB':>8} {'+MB':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['layout']:<9} {r['visual_tokens']:>7,} {r['decode_s']:>8.2f} {r['vision_s']:>8.2f} "
              f"{r['perceiver_s']:>7.3f} {r['project_s']:>6.3f} {r['prompt_tokens']:>6,} {r['prefill_s']:>9.2f} "
              f"{r['tokens_per_s']:>6.1f} {r['peak_mb']:>8,.0f} {r['extra_mb']:>6,.0f}")  # fmt: skip
    c, l = rows[:2]
    if len(rows) > 2:
        print(f"Clapper* = static cache and compiled step (CUDA graphs), as clapper ask decodes on CUDA: "
              f"{rows[2]['tokens_per_s']:.1f} vs {c['tokens_per_s']:.1f} tokens/s eager = "
              f"{rows[2]['tokens_per_s'] / c['tokens_per_s']:.2f}x")
    print(f"LLaVA-OV / Clapper: visual tokens {l['visual_tokens'] / c['visual_tokens']:.2f}x, "
          f"prefill time {l['prefill_s'] / c['prefill_s']:.2f}x, "
          f"memory above the weights {l['extra_mb'] / c['extra_mb']:.2f}x"
          + (" (peak = process RSS, weights included)" if "cpu" in c["setup"]
             else " (peak = CUDA allocated)"))  # fmt: skip
    print("decode and vision are shared: both layouts run SigLIP on the same frames")


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per layout after one warm-up (median)")
    ap.add_argument("--skip-cpu", action="store_true", help="only the GPU rows (Qwen2-7B bf16 and 4-bit)")
    ap.add_argument("--skip-4bit", action="store_true", help="no Qwen2-7B 4-bit rows on the GPU")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "bench.mp4")
        if not args.skip_cpu:
            print_rows(bench("0.5b", "fp32", "cpu", args.frames, args.new_tokens, video, args.repeats), args.frames)
        if torch.cuda.is_available():
            for quant in ("bf16",) + ("4bit",) * (not args.skip_4bit):
                print_rows(bench("7b", quant, "cuda", args.frames, args.new_tokens, video, args.repeats), args.frames)
        else:
            print("\nno CUDA GPU: the Qwen2-7B bf16 / 4-bit rows run only on a GPU machine")


if __name__ == "__main__":
    main()
