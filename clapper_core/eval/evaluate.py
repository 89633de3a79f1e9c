"""`clapper eval`: answer a multiple-choice benchmark under a visual-token budget.

    from clapper_core.eval import EvalOptions, evaluate, load_benchmark
    from clapper_core.settings import resolve

    bench = load_benchmark("videomme/test-00000-of-00001.parquet", video_root="Video-MME/data")
    report = evaluate(bench, resolve({"model": "clapper-demo"}), EvalOptions(max_visual_tokens=6000),
                      output_dir="eval/videomme")
    print(report.accuracy, report.by_task)

Every question becomes one `Record` (task "eval") appended to `<output_dir>/results.jsonl`
as soon as it is answered; `extra` holds the question id, task type, options, reference and
predicted letters and whether it was right. A re-run with the same settings skips what is
there, so an interrupted evaluation resumes. Under torchrun each rank takes whole videos,
writes its own part file, and rank 0 merges them and writes `<output_dir>/report.json`.

A question whose video is missing or cannot be decoded is recorded with its error and
counted as wrong; an answer no option can be read from is recorded and counted as wrong.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clapper_core import defaults
from clapper_core.errors import ConfigError, VideoNotFoundError
from clapper_core.eval.answers import LETTERS, extract_choice, format_prompt
from clapper_core.eval.benchmarks import Benchmark, Question
from clapper_core.records import Record, precision_name

RESULTS_FILE = "results.jsonl"
REPORT_FILE = "report.json"
RUN_FILE = "run.json"
DEFAULT_MAX_VISUAL_TOKENS = defaults.EVAL_MAX_VISUAL_TOKENS
DEFAULT_MAX_NEW_TOKENS = defaults.EVAL_MAX_NEW_TOKENS
PROMPT_VERSION = 1  # bump when `format_prompt` changes: results made with another prompt do not mix


@dataclass(frozen=True)
class EvalOptions:
    """How many frames each video gets, and how the run is kept."""

    max_visual_tokens: int | None = DEFAULT_MAX_VISUAL_TOKENS  # the budget; the largest frame count that fits
    frames: int | None = None  # a fixed frame count instead of the budget
    fps: float | None = None  # sample at this rate, up to the frames above (None: those frames spread evenly)
    overwrite: bool = False  # start afresh instead of resuming

    def __post_init__(self) -> None:
        if self.frames is not None and (isinstance(self.frames, bool) or not isinstance(self.frames, int)
                                        or self.frames < 1):
            raise ConfigError(f"--frames must be a whole number >= 1, got {self.frames!r}; try --frames 32.")
        if self.frames is None and self.max_visual_tokens is None:
            raise ConfigError("give --max-visual-tokens or --frames.")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps must be positive, got {self.fps}; try --fps 1.")


@dataclass
class TaskScore:
    total: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class EvalReport:
    """Accuracy over the selected questions; missing videos and failures count as wrong."""

    benchmark: str
    format: str
    model: str
    frames: int  # frames asked of each video
    max_visual_tokens: int | None  # the budget (None when --frames fixed the count)
    planned_visual_tokens: int  # what `frames` costs with this model
    total: int = 0
    correct: int = 0
    answered: int = 0  # a letter was read from the answer
    unparseable: int = 0  # an answer came back, no option could be read from it
    missing_videos: int = 0  # questions whose video was not found
    failed: int = 0  # questions whose video could not be decoded or encoded
    by_task: dict[str, TaskScore] = field(default_factory=dict)
    visual_tokens: dict[str, float] = field(default_factory=dict)  # min / mean / max actually used
    frames_used: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    world_size: int = 1
    results: str = ""
    report: str = ""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy"] = round(self.accuracy, 4)
        data["by_task"] = {k: {"total": v.total, "correct": v.correct, "accuracy": round(v.accuracy, 4)}
                           for k, v in self.by_task.items()}
        data["seconds"] = round(self.seconds, 2)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


# --- one question -------------------------------------------------------------------------------


def _record(q: Question, *, model: str, hardware: Any, extra: dict[str, Any]) -> Record:
    return Record(video=str(q.video_path or q.video), question=q.question, task="eval", model=model,
                  device=str(hardware.device), precision=precision_name(hardware), extra=extra)


def _extra(q: Question, options: EvalOptions, frames: int) -> dict[str, Any]:
    return {
        "id": q.id,
        "task_type": q.task,
        "options": list(q.options),
        "reference": q.answer_letter,
        "prediction": None,
        "correct": False,
        "status": "answered",  # answered | unparseable | missing_video | failed
        "budget": options.max_visual_tokens if options.frames is None else None,
        "frames_requested": frames,
        "prompt_version": PROMPT_VERSION,
    }


def _missing(q: Question, *, model: str, hardware: Any, options: EvalOptions, frames: int) -> Record:
    extra = _extra(q, options, frames)
    record = _record(q, model=model, hardware=hardware, extra=extra)
    exc = VideoNotFoundError(f"{q.video}: not found under the video root; check --video-root")
    record.error, record.error_type, extra["status"] = str(exc), type(exc).__name__, "missing_video"
    return record


def score(q: Question, record: Record, options: EvalOptions, frames: int) -> Record:
    """The engine's record of one question, made an eval record: the question's own text, its id, the letter
    read from the answer and whether it is right."""
    extra = _extra(q, options, frames)
    record.question, record.task, record.extra = q.question, "eval", extra
    if not record.ok:
        extra["status"] = "failed"
        return record
    choice = extract_choice(record.answer, q.options)
    if choice is None:
        extra["status"] = "unparseable"
    else:
        extra["prediction"] = LETTERS[choice]
        extra["correct"] = choice == q.answer
    return record


def _works(questions: list[Question], pending: list[int]) -> tuple[list[Any], list[list[int]], list[int]]:
    """The engine's work list: one item per video, its pending questions in order (consecutive questions about
    one video share its decoding and encoding). Also each item's positions in `pending`, and the positions
    of questions whose video is missing."""
    from clapper_core.engine import Work

    works, slots, missing = [], [], []
    for position, i in enumerate(pending):
        q = questions[i]
        if q.video_path is None:
            missing.append(position)
        elif works and works[-1].video == str(q.video_path):
            works[-1].questions.append(format_prompt(q.question, q.options))
            slots[-1].append(position)
        else:
            works.append(Work(str(q.video_path), [format_prompt(q.question, q.options)]))
            slots.append([position])
    return works, slots, missing


# --- the run ---------------------------------------------------------------------------------


def _check_run_file(path: Path, run: dict[str, Any], *, overwrite: bool, is_main: bool) -> None:
    """Results made with another model, budget or benchmark must not be mixed into this run."""
    if path.exists() and not overwrite:
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            before = None
        if isinstance(before, dict) and before != run:
            differ = sorted(k for k in set(run) | set(before) if run.get(k) != before.get(k))
            raise ConfigError(
                f"{path.parent} holds results of another run (different {', '.join(differ)}): "
                "choose another --output-dir or pass --overwrite."
            )
    if is_main:
        path.write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")


def evaluate(
    benchmark: Benchmark,
    settings: Any,
    options: EvalOptions = EvalOptions(),
    *,
    output_dir: str | os.PathLike[str],
    on_event: Callable | None = None,
    loaded: Any = None,
) -> EvalReport | None:
    """Answer every question of `benchmark`; the report on rank 0 (and a single process), else None.

    `settings` is a resolved `clapper_core.settings.Settings` (model, precision, device,
    generation); `loaded` skips loading the model when one is already at hand.
    """
    from clapper_core.distributed import ShardedJsonl, dist_info, select_device
    from clapper_core.eval.budget import model_frames_for_budget, model_visual_tokens
    from clapper_core.runner import Event, load

    emit = on_event or (lambda event: None)
    start = time.perf_counter()
    info = dist_info()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output-dir {out} is a file: give a folder.")
    out.mkdir(parents=True, exist_ok=True)

    if loaded is None:
        device = None
        if info.is_distributed:
            device = "cpu" if select_device(info, settings.device) == "cpu" else "cuda"
        loaded = load(settings, on_event=emit, device=device)
    config = loaded.model.config
    frames = options.frames or model_frames_for_budget(config, options.max_visual_tokens)
    planned = model_visual_tokens(config, frames)
    if options.frames is None:
        if options.fps is None:
            message = (f"{frames} frames per video fit the budget of {options.max_visual_tokens:,} visual tokens "
                       f"({planned:,} used).")
        else:
            message = (f"at {options.fps:g} fps, at most {frames} frames per video ({planned:,} visual tokens, "
                       f"within the budget of {options.max_visual_tokens:,}).")
        emit(Event("notice", message=message))

    if benchmark.missing_videos:
        missing = benchmark.missing_videos
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        n = sum(q.video_path is None for q in benchmark.questions)
        emit(Event("notice", message=f"{len(missing)} of {len({q.video for q in benchmark.questions})} videos "
                                     f"not found ({shown}): {n} question{'s' * (n != 1)} counted as wrong."))

    from clapper_core.video import SamplingConfig

    if options.fps is None:  # the frames spread evenly over each video, as benchmarks are usually run
        sampling = SamplingConfig(num_frames=frames, max_frames=frames, segment_size=config.segment_size)
    else:  # `fps` frames per second, never more than the budget allows
        sampling = SamplingConfig(fps=options.fps, max_frames=frames, segment_size=config.segment_size)
    generation = settings.generation_config()
    run = {"benchmark": benchmark.name, "format": benchmark.format, "model": settings.model,
           "frames": frames, "max_visual_tokens": options.max_visual_tokens if options.frames is None else None,
           "prompt_version": PROMPT_VERSION, "max_new_tokens": generation.max_new_tokens,
           "temperature": generation.temperature}
    if options.fps is not None:
        run["fps"] = options.fps
    _check_run_file(out / RUN_FILE, run, overwrite=options.overwrite, is_main=info.is_main)

    questions = benchmark.questions
    results = out / RESULTS_FILE
    sink = ShardedJsonl(results, keys=[q.id for q in questions], record_key=lambda o: o["extra"]["id"],
                        groups=[q.video for q in questions], info=info, resume=not options.overwrite)
    total = len(sink.pending) + sink.skipped
    if sink.skipped:
        emit(Event("notice", message=f"resuming from {results}: {sink.skipped} of {total} questions already "
                                     "answered (--overwrite starts afresh)."))
    emit(Event("batch", total=total, skipped=sink.skipped))
    from clapper_core.engine import InOrder
    from clapper_core.runner import closing_run, job_engine

    pending = [questions[i] for i in sink.pending]
    works, slots, missing = _works(questions, sink.pending)
    failed_videos: set[str] = set()
    done = sink.skipped

    def finished(q: Question, record: Record) -> None:
        nonlocal done
        done += 1
        show = record.ok or q.video not in failed_videos  # one notice per failed video
        if not record.ok:
            failed_videos.add(q.video)
        emit(Event("video_done", video=q.video, index=done, total=total,
                   record=record if show and q.video_path is not None else None))

    writer = InOrder(lambda record: sink.append(record.to_json()))  # the file keeps the work list's order
    try:
        for position in missing:
            q = pending[position]
            record = _missing(q, model=settings.model, hardware=loaded.hardware, options=options, frames=frames)
            writer.add(position, record)
            finished(q, record)
        engine = job_engine(loaded, settings, emit, task="eval", sampling=sampling, generation=generation)
        for result in closing_run(engine, works):
            position = slots[result.work][result.question]
            q = pending[position]
            record = score(q, result.record, options, frames)
            writer.add(position, record)
            finished(q, record)
        merged = sink.finish()
    finally:
        writer.flush()  # interrupted: what finished out of order is kept too, and a re-run skips it
        sink.close()
    if merged is None:
        return None
    report = summarize(benchmark, merged, frames=frames, planned=planned, options=options, model=settings.model)
    report.seconds, report.world_size = time.perf_counter() - start, info.world_size
    report.results, report.report = str(merged), str(out / REPORT_FILE)
    (out / REPORT_FILE).write_text(report.to_json() + "\n", encoding="utf-8")
    return report


def summarize(benchmark: Benchmark, results: str | os.PathLike[str], *, frames: int, planned: int,
              options: EvalOptions, model: str) -> EvalReport:
    """The report over `benchmark`'s questions, from a results file (lines of other questions ignored)."""
    from clapper_core.distributed import read_jsonl

    by_id = {obj["extra"]["id"]: obj for _, obj in read_jsonl(Path(results))
             if isinstance(obj.get("extra"), dict) and "id" in obj["extra"]}
    report = EvalReport(benchmark=benchmark.name, format=benchmark.format, model=model, frames=frames,
                        max_visual_tokens=options.max_visual_tokens if options.frames is None else None,
                        planned_visual_tokens=planned)
    tokens, frame_counts = [], []
    for q in benchmark.questions:
        obj = by_id.get(q.id)
        task = report.by_task.setdefault(q.task or "all", TaskScore())
        report.total += 1
        task.total += 1
        if obj is None:
            continue  # not answered yet (interrupted elsewhere): wrong, like any unanswered question
        extra = obj["extra"]
        status = extra.get("status")
        report.answered += status == "answered"
        report.unparseable += status == "unparseable"
        report.missing_videos += status == "missing_video"
        report.failed += status == "failed"
        if extra.get("correct"):
            report.correct += 1
            task.correct += 1
        if obj.get("visual_tokens") is not None:
            tokens.append(obj["visual_tokens"])
        if obj.get("frames") is not None and obj.get("error") is None:
            frame_counts.append(obj["frames"])
    if tokens:
        report.visual_tokens = {"min": min(tokens), "mean": round(sum(tokens) / len(tokens), 1), "max": max(tokens)}
    if frame_counts:
        report.frames_used = {"min": min(frame_counts), "mean": round(sum(frame_counts) / len(frame_counts), 1),
                              "max": max(frame_counts)}
    report.by_task = dict(sorted(report.by_task.items()))
    return report
