"""Captioning throughput, three ways on the same videos in one run: serial, pipelined, batched.

    python bench/throughput.py                                   # demo model, then the real shape, on the CPU
    python bench/throughput.py --models demo --videos 48
    python bench/throughput.py --device cuda --dtype bf16 --batch-sizes 1,16      # GPU

The ways:
  serial     today's path, one video at a time: `VideoJob(...).answer(prompt)` decodes, encodes and generates
  pipelined  the engine with decode workers reading ahead (--workers) and a batch of 1
  batched    the engine with decode workers and --batch-sizes answers generated together
The engine rows use the engine's own choice of decode workers (processes on a CPU under Linux, threads on a GPU);
--decode threads,processes runs every engine row with each (labelled), to compare them in one run.

The models: `demo` is the built-in clapper-demo (1 fps, at most --new-tokens, default 64); `real` is
SigLIP-so400m-384 + Qwen2-0.5B at their real shapes with random weights (speed and memory do not depend on the
values; at most 8 frames, 32 new tokens; a random model never stops early, so every answer runs to the limit).
The videos are short scenes of the synthetic world (3 to 12 s, 160x160 at 10 fps, so 1 fps sampling gives 3 to
12 frames, one to three segments) written to a temporary folder, then every video of the shared folder
(--shared, $CLAPPER_SHARED_VIDEOS or ../shared/videos; --no-shared skips it).

Per way: wall seconds, videos/min and the ratio to serial; each stage's share of the model thread's time
(serial: decode, encode, prefill + generate one after another; engine: decode is the time the model waited for a
decoded video, the decoding itself overlaps the model); the peak resident memory sampled every 20 ms while the
way runs and its rise over what was resident before it; and how many answers differ from serial's (serial runs
first and is the reference). One video goes through serial and through the engine first, uncounted, to warm up.
The real shape is built in memory and wrapped as a LoadedModel (saving and reloading 3.6 GB adds nothing measured).

`--repeat N` runs every way N times, a round at a time, and reports each way's median run (and every round's
ratio), for machines whose speed drifts. Run it on an otherwise idle machine: with other processes busy on the
cores, torch's CPU threads stall, and the serial way (many small steps) suffers far more than the engine, which
inflates the ratios (--threads 1 helps).

Targets (the issue): on a 2-core CPU the best engine way captions >= 3x serial's videos/min with the demo model and
>= 1.5x with the real shape, every answer identical to serial's, and peak RSS within 1 GB of serial's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e import PeakSampler  # the benches' one memory sampler (bench/ is on the path: scripts run from there)

REPO = Path(__file__).resolve().parents[1]
REAL_MODEL = "random-siglip-so400m-384-qwen2-0.5b"
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
STAGES = ("decode", "encode", "generate")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- videos ----------------------------------------------------------------------------------


def make_videos(out_dir: Path, count: int) -> list[str]:
    """`count` synthetic-world videos of 3 to 12 s (video 0 is the shortest: it warms up)."""
    from clapper_core.synthetic import WorldConfig, make_video

    paths = []
    for i in range(count):
        config = WorldConfig(size=160, fps=10, seconds=3 + (7 * i) % 10)  # 3, 10, 7, 4, 11, 8, 5, 12, 9, 6, ...
        paths.append(str(make_video(out_dir, i, seed=0, config=config, prefix="bench").path))
    return paths


def shared_videos(args: argparse.Namespace) -> list[str]:
    """Every video in the shared folder, sorted by path; none with --no-shared or when there is no folder."""
    from clapper_core.batch_files import find_videos

    if args.no_shared:
        return []
    folder = Path(args.shared or os.environ.get("CLAPPER_SHARED_VIDEOS") or REPO.parent / "shared" / "videos")
    if not folder.is_dir():
        if args.shared:
            sys.exit(f"--shared {folder}: no such folder")
        log(f"no shared videos ({folder} is not a folder)")
        return []
    return find_videos([folder])


# --- memory ----------------------------------------------------------------------------------


class RssReader:
    """`reader()`: this process's resident memory now, plus its child processes' private memory (forked decode
    workers share the rest with it), in MB. A child's private memory comes from /proc/PID/smaps_rollup, which walks
    the child's whole address space (a fork of a 4.6 GB process: 50 to 70 ms a read), so the children are read
    again only once 50 times the last reading's cost has passed: the sampler takes at most 2% of a core, rather
    than a core of the two the run is measured on."""

    def __init__(self) -> None:
        self.children_kb, self.next_read = 0, 0.0

    def __call__(self) -> float:
        now = time.perf_counter()
        if now >= self.next_read:
            self.children_kb = self._children_kb()
            self.next_read = now + 50 * (time.perf_counter() - now)
        return (_kb("/proc/self/status", ("VmRSS:",)) + self.children_kb) / 1024

    @staticmethod
    def _children_kb() -> int:
        total = 0
        for children in Path("/proc/self/task").glob("*/children"):
            try:
                pids = children.read_text().split()
            except (FileNotFoundError, ProcessLookupError):  # the thread ended since the listing
                continue
            for pid in pids:
                total += _kb(f"/proc/{pid}/smaps_rollup", ("Private_Clean:", "Private_Dirty:"))
        return total


def _kb(path: str, keys: tuple[str, ...]) -> int:
    """The sum of the `keys` lines (in kB) of a /proc file; 0 when the process has gone."""
    try:
        with open(path) as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(keys))
    except (FileNotFoundError, ProcessLookupError):
        return 0


class PeakRSS(PeakSampler):
    """`with PeakRSS() as rss:` samples an `RssReader` every 20 ms; `.before` and `.peak` in MB."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(RssReader(), interval)
        self.before = 0.0

    def __enter__(self) -> "PeakRSS":
        self.before = self.peak = self.measure()
        return super().__enter__()


# --- models ----------------------------------------------------------------------------------


@dataclass
class Bench:
    """One model and what it captions: the loaded model, its settings and the videos."""

    name: str
    loaded: Any
    settings: Any
    videos: list[str]


def make_settings(args: argparse.Namespace, **flags: Any):
    """Settings from these flags alone: the user's config file and CLAPPER_* variables do not apply."""
    from clapper_core.settings import resolve

    return resolve({"device": args.device, "quant": args.dtype, **flags}, env={},
                   path=Path(args.tmp) / "no-config.toml")


def demo_bench(args: argparse.Namespace, videos: list[str]) -> Bench:
    from clapper_core.runner import load

    settings = make_settings(args, model="clapper-demo", max_new_tokens=args.new_tokens or 64)
    return Bench("demo", load(settings), settings, videos)


def real_bench(args: argparse.Namespace, videos: list[str]) -> Bench:
    """SigLIP-so400m-384 + Qwen2-0.5B with random weights, wrapped as a LoadedModel."""
    from clapper_core.hardware import HardwareChoice
    from clapper_core.model.loading import LoadedModel
    from clapper_core.model.processing_clapper import ClapperProcessor
    from clapper_core.model.tiny import QWEN2, random_model, real_shape_config
    from clapper_core.model.tokenizer import VIDEO_TOKEN

    tokenizer = wide_tokenizer(QWEN2["0.5b"]["vocab_size"])
    config = real_shape_config("0.5b", video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN))
    hardware = HardwareChoice(device=args.device, dtype=DTYPES[args.dtype], attn_implementation="sdpa",
                              quant=args.dtype)
    log(f"building {REAL_MODEL} ({hardware.describe()})")
    model = random_model(config, dtype=hardware.torch_dtype, device=args.device)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    loaded = LoadedModel(model, ClapperProcessor(tokenizer, config), hardware, source="random weights")
    settings = make_settings(args, model=REAL_MODEL, max_frames=8, max_new_tokens=args.new_tokens or 32)
    return Bench("real", loaded, settings, videos)


def wide_tokenizer(vocab_size: int):
    """The small byte-level tokenizer padded with placeholder words (" w0", " w1", ...) to `vocab_size`, so that
    every id the random LLM picks decodes to text (the small one drops unknown ids: answers would be empty)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from clapper_core.model.tiny import TINY_TEXTS
    from clapper_core.model.tokenizer import (END_OF_TEXT, IM_END, IM_START, QWEN2_CHAT_TEMPLATE, VIDEO_TOKEN,
                                              build_small_tokenizer)

    state = json.loads(build_small_tokenizer(TINY_TEXTS, vocab_size=400).backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    i = 0
    while len(vocab) < vocab_size:
        vocab.setdefault(f"\u0120w{i}", len(vocab))  # \u0120 is the byte-level space
        i += 1
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(state)), eos_token=IM_END,
                                        pad_token=END_OF_TEXT, additional_special_tokens=[IM_START, VIDEO_TOKEN])
    tokenizer.chat_template = QWEN2_CHAT_TEMPLATE
    return tokenizer


# --- the ways --------------------------------------------------------------------------------


def answer_key(record: Any) -> str:
    return record.answer if record.ok else f"error: {record.error_type}"


def run_serial(bench: Bench, videos: list[str]) -> tuple[dict[str, str], dict[str, float], int]:
    """Today's path, one video after another: answers by video, stage seconds, answers that stopped early."""
    from clapper_core.runner import VideoJob, recoverable

    answers, spent, stopped = {}, dict.fromkeys(STAGES, 0.0), 0
    limit = bench.settings.max_new_tokens
    for video in videos:
        try:
            record = VideoJob(bench.loaded, video, bench.settings, task="caption").answer(bench.settings.prompt)
        except recoverable() as exc:
            answers[video] = f"error: {type(exc).__name__}"
            continue
        answers[video] = answer_key(record)
        t = record.timings
        spent["decode"] += t.decode_s or 0.0
        spent["encode"] += t.encode_s or 0.0
        spent["generate"] += (t.prefill_s or 0.0) + (t.generate_s or 0.0)
        stopped += (record.new_tokens or 0) < limit
    return answers, spent, stopped


def run_engine(bench: Bench, videos: list[str], batch_size: int, workers: int, processes: bool | None = None
               ) -> tuple[dict[str, str], Any, str]:
    """The engine over every video: answers by video, its `EngineStats`, and how it shared the cores."""
    from clapper_core.engine import Engine, EngineConfig, Work

    s = bench.settings
    config = EngineConfig(batch_size=batch_size, decode_workers=workers, decode_processes=processes)
    engine = Engine(bench.loaded, config, s.sampling_config(),
                    s.generation_config(), model=s.model, task="caption")
    answers = {}
    for done in engine.run([Work(video, [s.prompt]) for video in videos]):
        answers[videos[done.work]] = answer_key(done.record)
    return answers, engine.stats, engine.cores.decision


def measured(fn, device: str) -> tuple[Any, float, PeakRSS, float | None]:
    """`fn()`, its wall seconds, its resident memory and its peak CUDA memory in MB (None on the CPU)."""
    import torch

    cuda = device == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()  # nothing queued before is counted
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return out, seconds, rss, torch.cuda.max_memory_allocated() / 2**20 if cuda else None


def bench_model(bench: Bench, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Warm up, then serial, pipelined and each batch size on the same videos: one row each, and run facts."""
    log(f"[{bench.name}] warming up on {Path(bench.videos[0]).name}")
    run_serial(bench, bench.videos[:1])
    run_engine(bench, bench.videos[:1], 1, args.workers)
    ways = [(f"{way}{label}", batch, processes) for label, processes in args.decode
            for way, batch in [("pipelined", 1)] + [("batched", b) for b in args.batch_sizes]]
    rounds, reference, stopped = [], None, 0
    for k in range(args.repeat):  # every way once a round, so that a slow spell of the machine hits them all
        if args.repeat > 1:
            log(f"[{bench.name}] round {k + 1} of {args.repeat}")
        serial, answers, stopped_k = serial_row(bench, args)
        if reference is None:
            reference, stopped = answers, stopped_k
        serial["mismatches"] = sum(answers[v] != reference[v] for v in bench.videos)
        rounds.append([serial] + [engine_row(bench, args, way, batch, processes, reference, serial)
                                  for way, batch, processes in ways])
    rows = [median_row([r[i] for r in rounds]) for i in range(len(rounds[0]))]
    for r in rows:
        r["vs_serial"] = r["videos_per_min"] / rows[0]["videos_per_min"]
    return rows, {"stopped_early": stopped, "answers": len(reference), "rounds": args.repeat}


def median_row(runs: list[dict]) -> dict:
    """One way's row over the rounds: the run of median time, with every round's ratio to its own serial run and
    the mismatches of all of them."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    r = dict(ordered[(len(ordered) - 1) // 2])
    r["round_ratios"] = [run["vs_serial"] for run in runs]
    r["mismatches"] = max(run["mismatches"] for run in runs)
    return r


def serial_row(bench: Bench, args: argparse.Namespace) -> tuple[dict, dict[str, str], int]:
    log(f"[{bench.name}] serial: {len(bench.videos)} videos")
    (answers, spent, stopped), seconds, rss, cuda_mb = measured(lambda: run_serial(bench, bench.videos), args.device)
    total = sum(spent.values()) or 1.0
    r = row(bench, "serial", 1, seconds, {k: v / total for k, v in spent.items()}, rss, cuda_mb, answers)
    r.update(vs_serial=1.0, mismatches=0)
    log(_progress(r))
    return r, answers, stopped


def engine_row(bench: Bench, args: argparse.Namespace, way: str, batch: int, processes: bool | None,
               reference: dict, serial: dict) -> dict:
    log(f"[{bench.name}] {way}, batch {batch}, {args.workers} decode workers")
    (answers, stats, cores), seconds, rss, cuda_mb = measured(
        lambda: run_engine(bench, bench.videos, batch, args.workers, processes), args.device)
    shares = stats.shares()
    shares["decode"] = shares.pop("decode wait")  # the engine's decode column: the model waiting for a decode
    r = row(bench, way, batch, seconds, shares, rss, cuda_mb, answers)
    differ = [Path(v).name for v in bench.videos if answers.get(v) != reference[v]]
    r.update(vs_serial=r["videos_per_min"] / serial["videos_per_min"], mismatches=len(differ),
             mismatched=differ[:10], decode_worker_s=stats.decode_s, wait_s=stats.wait_s, cores=cores)
    log(_progress(r) + (f"; {cores}" if cores else ""))
    return r


def row(bench: Bench, way: str, batch: int, seconds: float, shares: dict, rss: PeakRSS, cuda_mb, answers) -> dict:
    n = len(bench.videos)
    return {"model": bench.name, "way": way, "batch": batch, "videos": n, "seconds": seconds,
            "videos_per_min": 60.0 * n / seconds, "shares": shares, "peak_rss_mb": rss.peak,
            "rss_delta_mb": rss.peak - rss.before, "peak_cuda_mb": cuda_mb,
            "errors": sum(a.startswith("error: ") for a in answers.values())}


def _progress(r: dict) -> str:
    return f"  {r['seconds']:.1f} s, {r['videos_per_min']:.1f} videos/min, {r['vs_serial']:.2f}x serial"


# --- output ----------------------------------------------------------------------------------

HEADER = ("| model | way | batch | videos | seconds | videos/min | vs serial | decode | encode | generate "
          "| peak RSS MB (Δ vs before) | answers = serial |")


def table(rows: list[dict]) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for r in rows:
        memory = f"{r['peak_rss_mb']:,.0f} ({r['rss_delta_mb']:+,.0f})"
        if r["peak_cuda_mb"] is not None:
            memory += f", CUDA {r['peak_cuda_mb']:,.0f}"
        same = ("reference" if r["way"] == "serial"
                else "yes" if not r["mismatches"] else f"no: {r['mismatches']} of {r['videos']} differ")
        shares = " | ".join(f"{100 * r['shares'][k]:.0f}%" for k in STAGES)
        lines.append(f"| {r['model']} | {r['way']} | {r['batch']} | {r['videos']} | {r['seconds']:.1f} "
                     f"| {r['videos_per_min']:.1f} | {r['vs_serial']:.2f}x | {shares} | {memory} | {same} |")
    return "\n".join(lines)


def report(bench: Bench, rows: list[dict], facts: dict, args: argparse.Namespace, generated: int) -> str:
    import torch

    s = bench.settings
    title = (f"### {bench.name} ({s.model}): {args.device} {args.dtype}, {torch.get_num_threads()} torch threads, "
             f"{len(bench.videos)} videos ({generated} generated, {len(bench.videos) - generated} shared), "
             f"at most {s.max_frames} frames at {s.fps:g} fps, at most {s.max_new_tokens} new tokens")
    workers = ", ".join(f"{r['way']} {r['batch']}: {r['decode_worker_s']:.1f} s" for r in rows[1:])
    shared = "; ".join(f"{r['way']} {r['batch']}: {r['cores']}" for r in rows[1:] if r["cores"])
    notes = [
        f"Serial answers that ended before the token limit: {facts['stopped_early']} of {facts['answers']}.",
        *([f"Each row is the median of {facts['rounds']} rounds; each round's ratios to its own serial run: "
           + "; ".join(f"{r['way']} {r['batch']}: " + " ".join(f"{x:.2f}" for x in r["round_ratios"])
                       for r in rows[1:])] if facts["rounds"] > 1 else []),
        "decode / encode / generate: each stage's share of the model thread's time. Serial runs them one after "
        "another; on the engine rows decode is the time the model waited for a decoded video, while the decoding "
        f"itself overlaps the model (decode workers' time in all: {workers}).",
        f"The model's torch threads (engine/cores.py): {shared or 'torch threads, not changed'}.",
        "Peak RSS: the process's resident memory sampled every 20 ms during the way (weights included), plus the "
        "private memory of its decode processes if any; Δ: its rise over what was resident just before.",
    ]
    return "\n".join([title, "", table(rows), ""] + notes) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="demo,real", help="comma-separated: demo, real (default both)")
    ap.add_argument("--videos", type=int, default=48, help="generated videos for the demo model (default 48)")
    ap.add_argument("--real-videos", type=int, default=8,
                    help="generated videos for the real shape (default 8; the shared videos are added to both)")
    ap.add_argument("--new-tokens", type=int, default=None, help="most tokens an answer (default 64 demo, 32 real)")
    ap.add_argument("--batch-sizes", default="4,8,16", help="batched rows to run, comma-separated (default 4,8,16)")
    ap.add_argument("--workers", type=int, default=2, help="decode workers of the engine (default 2)")
    ap.add_argument("--decode", default="default",
                    help="decode workers of the engine rows, comma-separated: default (the engine's choice), "
                         "threads, processes (default: default)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every way; each row is its median run (default 1)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--shared", default=None, help="folder of extra videos (default $CLAPPER_SHARED_VIDEOS or "
                                                   "../shared/videos beside the repository)")
    ap.add_argument("--no-shared", action="store_true", help="only the generated videos")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or set(args.models) - {"demo", "real"}:
        ap.error(f"--models {','.join(args.models)}: give demo, real or demo,real")
    modes = {"default": ("", None), "threads": (", decode threads", False), "processes": (", decode processes", True)}
    wanted = [m.strip() for m in args.decode.split(",") if m.strip()]
    if not wanted or set(wanted) - set(modes):
        ap.error(f"--decode {args.decode}: give default, threads, processes or a comma-separated list of them")
    args.decode = [modes[m] for m in wanted]
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batch-sizes {args.batch_sizes}: give whole numbers such as 4,8,16")
    if any(b < 1 for b in args.batch_sizes) or args.videos < 0 or args.real_videos < 0 or args.workers < 0 \
            or args.repeat < 1:
        ap.error("batch sizes and --repeat must be 1 or more; --videos, --real-videos and --workers 0 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA GPU is visible")
    results: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "tmp"}, "models": {}}
    with tempfile.TemporaryDirectory(prefix="clapper-throughput-") as tmp:
        args.tmp = tmp
        counts = {"demo": args.videos, "real": args.real_videos}
        wanted = max(counts[m] for m in args.models)
        log(f"writing {wanted} synthetic videos to {tmp}")
        generated, shared = make_videos(Path(tmp), wanted), shared_videos(args)
        for name in args.models:
            videos = generated[: counts[name]] + shared
            if not videos:
                sys.exit(f"{name}: no videos to caption; raise --videos / --real-videos or drop --no-shared")
            bench = (demo_bench if name == "demo" else real_bench)(args, videos)
            rows, facts = bench_model(bench, args)
            print(report(bench, rows, facts, args, counts[name]), flush=True)
            results["models"][name] = {"model": bench.settings.model, "rows": rows, **facts}
            del bench  # free the weights before the next model
    results["machine"] = {"cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
