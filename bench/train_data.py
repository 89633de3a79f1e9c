"""Training input: decoding in DataLoader workers against decoding in the training process, and memory
against the number of distinct videos.

    python bench/train_data.py                       # the CPU run (tiny model): speed on 400 videos,
                                                     # RSS at 200 / 2,000
    python bench/train_data.py --device cuda --steps 30 --skip-rss      # a GPU: stage 1 and stage 2,
                                                     # Qwen2-0.5B-shaped LLM + SigLIP-so400m-shaped tower, bf16

Speed: one training run per setting on the same generated videos (stage 1, batch 8), decoding in the
training process (`--num-workers 0`, the path clapper trained on before worker loading) against
`--workers` DataLoader workers, each decoding with FFmpeg's own threads (the previous behaviour: frame threads for
every core in every worker) and with its share of the cores (`hardware.decode_threads`, what training does now);
samples/s and tokens/s from the metrics log over every step but the first (start-up), with the share of that
time the loop waited on data.

Memory: peak RSS of a run of one epoch over 200 and over 2,000 distinct videos, decoding in the
process (so one process holds everything), for the current loader and for the previous behaviour,
which kept every decoded clip and every preprocessed video for the whole run (ClipCache's memory and
ExampleBuilder's per-path dict, reproduced here by `--keep-clips`).

Each measurement runs in its own process (peak RSS is per process). Figures on a shared machine are
noisy: read the ratios, printed beside their baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151_936, max_position_embeddings=32_768, tie_word_embeddings=True)
SIGLIP_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=384, patch_size=14, vision_use_head=False)


def videos(work: Path, n: int, size: int, seconds: int) -> Path:
    """`n` generated videos and a train.jsonl (one record each, its questions as turns), written once per shape."""
    from clapper_core.synthetic import WorldConfig, generate_dataset

    out = work / f"videos-{n}-{size}px-{seconds}s-qa"
    train_file = out / "train.jsonl"
    if not train_file.is_file():
        generate_dataset(out, num_videos=n, seed=0, config=WorldConfig(size=size, seconds=seconds), multi_turn=True,
                         captions=False)
    return train_file


def qwen2_05b_model(work: Path) -> Path:
    """A random Clapper with Qwen2-0.5B's LLM shape and SigLIP-so400m's tower shape (nothing downloaded)."""
    from clapper_core.model.tiny import build_tiny_clapper

    out = work / "clapper-qwen2-0.5b-shaped"
    if not (out / "config.json").is_file():
        build_tiny_clapper(out, text_config=QWEN2_05B, vision_config=SIGLIP_SO400M, perceiver_heads=8,
                           perceiver_depth=2)
    return out


def tiny_model(work: Path) -> Path:
    """The tests' tiny random Clapper: on the CPU its step is short, as a GPU's is, so the data path shows."""
    from clapper_core.model.tiny import build_tiny_clapper

    out = work / "clapper-tiny"
    if not (out / "config.json").is_file():
        build_tiny_clapper(out)
    return out


def child(spec: dict) -> dict:
    """One training run (in this process); returns its throughput, data wait and peak RSS."""
    from clapper_core.train import TrainConfig, read_metrics, train

    if spec.pop("keep_clips"):
        keep_every_clip()
    if spec.pop("ffmpeg_threads"):
        from clapper_core.train import trainer

        trainer.decode_threads = lambda workers: 0  # the previous behaviour: FFmpeg's own threads in every worker
    cfg = TrainConfig(**spec)
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    rows = read_metrics(Path(cfg.output) / "metrics.jsonl")
    timed = rows[1:]  # the first step pays for start-up (workers forking, first decodes)
    span = rows[-1]["time"] - rows[0]["time"]
    return {
        "steps": result.steps, "wall_s": wall,
        "samples_per_s": sum(r["samples"] for r in timed) / span,
        "tokens_per_s": sum(r["tokens"] for r in timed) / span,
        "data_wait": sum(r["data_wait_s"] for r in timed) / span,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_mem_mb": rows[-1]["peak_mem_mb"],
        "skipped": result.skipped_records,
    }


def keep_every_clip() -> None:
    """The previous loader's memory behaviour: every decoded clip and every preprocessed video kept for the run."""
    from clapper_core.train import batches, data

    clips: dict = {}
    videos_: dict = {}
    get, video = data.ClipCache.get, batches.ExampleBuilder.video

    def cached_get(self, path):
        if path not in clips:
            clips[path] = get(self, path)
        return clips[path]

    def cached_video(self, record):
        if record.video not in videos_:
            videos_[record.video] = video(self, record)
        return videos_[record.video]

    data.ClipCache.get = cached_get
    batches.ExampleBuilder.video = cached_video


def run(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec, default=str)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"a bench run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def base_spec(args, data: Path, out: Path, **kw) -> dict:
    spec = dict(data=str(data), output=str(out), model=args.model, stage=1, batch_size=args.batch_size,
                save_every=0, device=args.device, fps=args.fps, max_frames=args.max_frames, seed=0, warmup=0.0,
                num_workers=0, keep_clips=False, ffmpeg_threads=False)
    spec.update(kw)
    return spec


def speed(args, work: Path, tmp: Path) -> None:
    data = videos(work, args.videos, args.size, args.seconds)
    steps = args.steps or args.videos // args.batch_size
    stages = (1, 2) if args.device == "cuda" else (1,)
    print(f"\n## speed: {args.videos} videos of {args.size}px x {args.seconds}s, batch {args.batch_size}, "
          f"{steps} steps, model {Path(args.model).name}, device {args.device}")
    print(f"{'stage':>5} {'decoding in':<30} {'samples/s':>10} {'tokens/s':>10} {'data wait':>10} "
          f"{'peak mem':>10} {'vs in-process':>14}")
    ways = ((0, False, "the training process"), (args.workers, True, f"{args.workers} workers, FFmpeg's threads"),
            (args.workers, False, f"{args.workers} workers"))
    for stage in stages:
        base = None
        for workers, ffmpeg_threads, where in ways:
            r = run(base_spec(args, data, tmp / f"s{stage}w{workers}{ffmpeg_threads}", stage=stage, steps=steps,
                              num_workers=workers, lr=1e-5 if stage == 2 else None, ffmpeg_threads=ffmpeg_threads))
            base = base or r["samples_per_s"]
            print(f"{stage:>5} {where:<30} {r['samples_per_s']:>10.2f} {r['tokens_per_s']:>10.0f} "
                  f"{r['data_wait']:>10.0%} {r['peak_mem_mb']:>8.0f}MB {r['samples_per_s'] / base:>13.2f}x",
                  flush=True)


def memory(args, work: Path, tmp: Path) -> None:
    small, large = args.rss_counts
    print(f"\n## peak RSS: one epoch over {small} and {large} distinct videos ({args.rss_size}px x "
          f"{args.seconds}s), decoding in the training process, batch {args.batch_size}")
    print(f"{'loader':<34} {f'{small} videos':>12} {f'{large} videos':>12} {'growth':>8}")
    for label, keep in (("previous (every clip kept)", True), ("current (nothing kept)", False)):
        rss = []
        for n in (small, large):
            data = videos(work, n, args.rss_size, args.seconds)
            r = run(base_spec(args, data, tmp / f"rss{n}{keep}", steps=n // args.batch_size, keep_clips=keep))
            rss.append(r["peak_rss_mb"])
        print(f"{label:<34} {rss[0]:>10.0f}MB {rss[1]:>10.0f}MB {rss[1] / rss[0]:>7.2f}x", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", help="model to train (default: the tests' tiny random Clapper on the CPU; on CUDA "
                   "a random Qwen2-0.5B-shaped Clapper; built once under --work)")
    p.add_argument("--videos", type=int, default=400, help="distinct videos for the speed runs")
    p.add_argument("--size", type=int, default=256, help="frame size of the speed runs' videos (px)")
    p.add_argument("--seconds", type=int, default=8, help="video length (s)")
    p.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video")
    p.add_argument("--max-frames", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers against decoding in-process")
    p.add_argument("--steps", type=int, help="steps per speed run (default: one epoch)")
    p.add_argument("--rss-counts", type=int, nargs=2, default=(200, 2000), metavar=("SMALL", "LARGE"))
    p.add_argument("--rss-size", type=int, default=128, help="frame size of the memory runs' videos (px)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "clapper-bench-train-data",
                   help="generated videos and models, kept between runs")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        args.model = str(qwen2_05b_model(args.work) if args.device == "cuda" else tiny_model(args.work))
    print(f"# bench/train_data.py  ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args, args.work, Path(tmp))
        if not args.skip_rss:
            memory(args, args.work, Path(tmp))


if __name__ == "__main__":
    main()
