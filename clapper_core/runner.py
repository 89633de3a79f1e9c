"""The jobs behind `clapper ask` and `clapper caption`, one call each, with stages and timings.

Core never prints: progress goes through `on_event`, a callable that receives `Event`s
(a stage starting or ending, a video finished, a notice for the user). The CLI turns them
into a rich display on stderr; a script can pass its own callable or none.

    from clapper_core.runner import ask, caption_batch
    from clapper_core.settings import resolve

    for item in ask("clip.mp4", ["what happens?", "what colour is the ball?"], resolve()):
        print(item, end="") if isinstance(item, str) else print()   # text pieces, then a Record

    summary = caption_batch(["videos/"], resolve({"fps": 1}), output="captions.jsonl")

Several questions about one video decode and encode it once. `caption_batch` loads the model
once, walks directories in a stable order, appends one JSON line per video to `output` as
soon as it is done (an interrupted run loses nothing, a re-run skips what is there), records
a failed video and goes on, and splits the work across processes under torchrun. Images in a
directory are taken too: an image is a one-frame video.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapper_core.batch_files import (  # noqa: F401  (part of this module's interface)
    VIDEO_EXTENSIONS,
    BatchInterrupted,
    BatchSummary,
    drop_failures,
    failed_before,
    find_videos,
    media_suffixes,
)
from clapper_core.engine import InOrder, Work
from clapper_core.errors import ClapperError, ConfigError, DataError, VideoNotFoundError
from clapper_core.records import Record, Timings, clip_fields, precision_name
from clapper_core.settings import DEMO_MODEL, Settings

STAGES = ("load", "decode", "encode", "generate")
DEMO_NOTICE = (
    f"Using the built-in demo model ({DEMO_MODEL}): it only knows a synthetic world of moving shapes. "
    "Choose a real model with --model, CLAPPER_MODEL or `clapper config set model NAME`."
)


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something the user may want to see while a job runs.

    kind:
      "notice"      a one-line message for stderr (`message`)
      "batch"       a batch starts: `total` videos to do, `skipped` already done
      "stage"       `stage` (load/decode/encode/generate) starts for `video`
      "stage_done"  `stage` finished after `seconds`
      "tokens"      `index` pieces of `video`'s answer generated so far, at most `total`
      "video_done"  `video` finished (`record`, `index` of `total`; the record may hold an error)
      "record"      `record` is written (a batch hands them on in input order; on Ctrl-C the rest that finished)
      "engine"      the batched engine's running figures (`stats`, an `EngineStats`): videos/min, stage shares
    """

    kind: str
    video: str | None = None
    stage: str | None = None
    seconds: float | None = None
    index: int = 0
    total: int = 0
    skipped: int = 0
    record: Record | None = None
    message: str | None = None
    stats: Any = None


OnEvent = Callable[[Event], None]


def _ignore(event: Event) -> None:
    pass


class _Stage:
    """`with _Stage(emit, "decode", video) as s:` emits stage/stage_done and keeps `s.seconds`."""

    def __init__(self, emit: OnEvent, stage: str, video: str | None = None) -> None:
        self.emit, self.stage, self.video, self.seconds = emit, stage, video, 0.0

    def __enter__(self) -> "_Stage":
        self.emit(Event("stage", video=self.video, stage=self.stage))
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self.seconds = time.perf_counter() - self._start
        if exc_type is None:
            self.emit(Event("stage_done", video=self.video, stage=self.stage, seconds=self.seconds))


# --- model and one video ------------------------------------------------------------------


def load(settings: Settings, *, on_event: OnEvent | None = None, device: str | None = None):
    """Load the configured model once (a `LoadedModel`), passing its notices on as events."""
    emit = on_event or _ignore
    if settings.uses_demo_model:
        emit(Event("notice", message=DEMO_NOTICE))
    from clapper_core.model import LoadConfig

    config = settings.load_config() if device is None else LoadConfig(
        model=settings.model, quant=settings.quant, device=device, attn=settings.attn
    )
    with _Stage(emit, "load"):
        loaded = _load_model(config)
    for notice in getattr(loaded, "notices", ()):
        emit(Event("notice", message=notice))
    return loaded


# The two calls into the model layer, named so that tests can put a stand-in model behind
# the whole job (real decoding, canned generation) without loading weights.
def _load_model(config: Any) -> Any:
    from clapper_core.model import load_model

    return load_model(config)


def _open_session(loaded: Any, clip: Any) -> Any:
    from clapper_core.generation import VideoSession

    return VideoSession(loaded, clip)


def _open_backend(loaded: Any, config: Any) -> Any:
    from clapper_core.engine.backend import ModelBackend

    return ModelBackend(loaded, batch_size=config.batch_size)


class VideoJob:
    """One video decoded and encoded once, ready for any number of questions.

    Built by `open_video`; `stream(question)` yields the answer's text pieces and then its `Record`.
    With `conversation=True` the questions are turns of one chat: each answer stays in the context.
    """

    def __init__(self, loaded: Any, video: str | os.PathLike[str], settings: Settings, *,
                 task: str = "ask", on_event: OnEvent | None = None, conversation: bool = False) -> None:
        from clapper_core.video import load_clip

        self.video, self.settings, self.task = str(video), settings, task
        self.emit = on_event or _ignore
        self.loaded = loaded
        self.timings = Timings()
        with _Stage(self.emit, "decode", self.video) as stage:
            self.clip = load_clip(video, settings.sampling_config())
        self.timings.decode_s = stage.seconds
        emit_clip_warnings(self.emit, self.video, self.clip)
        with _Stage(self.emit, "encode", self.video) as stage:
            self.session = _open_session(loaded, self.clip)
        self.timings.encode_s = getattr(self.session, "encode_s", None) or stage.seconds
        self.generation = settings.generation_config()
        self.history: list[tuple[str, str]] | None = [] if conversation else None

    def base_record(self, question: str) -> Record:
        """A record with everything known about the video and the model, no answer yet."""
        hardware = self.loaded.hardware
        return Record(video=self.video, question=question, task=self.task, model=self.settings.model,
                      device=str(hardware.device), precision=precision_name(hardware),
                      visual_tokens=self.session.num_visual_tokens, **clip_fields(self.clip))

    def stream(self, question: str) -> Iterator[str | Record]:
        """Text pieces of the answer as they are generated, then the finished `Record`."""
        pieces: list[str] = []
        limit = self.generation.max_new_tokens
        with _Stage(self.emit, "generate", self.video):
            for piece in without_leading_space(self.session.stream(question, self.generation,
                                                                   history=self.history or ())):
                pieces.append(piece)
                # a piece is one token, or a few when a character spans several: close enough to count
                self.emit(Event("tokens", video=self.video, index=len(pieces), total=limit))
                yield piece
        if self.history is not None:
            self.history.append((question, "".join(pieces)))
        stats = self.session.last_stats
        record = self.base_record(question)
        record.answer = "".join(pieces)
        record.timings = Timings(
            decode_s=self.timings.decode_s,
            encode_s=self.timings.encode_s,
            prefill_s=stats.prefill_s,
            generate_s=stats.generate_s,
        )
        record.new_tokens = stats.new_tokens
        record.tokens_per_s = stats.tokens_per_s
        yield record

    def answer(self, question: str) -> Record:
        """The non-streaming call is the streaming one joined."""
        *_, record = self.stream(question)
        assert isinstance(record, Record)
        return record


def open_video(video: str | os.PathLike[str], settings: Settings, *, on_event: OnEvent | None = None,
               loaded: Any = None, task: str = "ask", conversation: bool = False) -> VideoJob:
    """Load the model (unless `loaded` is given), decode and encode `video`: the start of a chat."""
    check_file(video)
    loaded = loaded if loaded is not None else load(settings, on_event=on_event)
    return VideoJob(loaded, video, settings, task=task, on_event=on_event, conversation=conversation)


def ask(video: str | os.PathLike[str], questions: Sequence[str], settings: Settings, *,
        on_event: OnEvent | None = None, loaded: Any = None) -> Iterator[str | Record]:
    """Answer `questions` about one video: text pieces as they come, a `Record` after each answer."""
    if not questions:
        raise ConfigError("no question given: add one after the video, e.g. clapper ask clip.mp4 \"what happens?\"")
    job = open_video(video, settings, on_event=on_event, loaded=loaded)
    for question in questions:
        yield from job.stream(question)


def emit_clip_warnings(emit: OnEvent, video: str, clip: Any) -> None:
    """A decoded clip's warnings (damaged frames, say) as notices, each naming its video once."""
    for warning in getattr(clip, "warnings", ()):
        emit(Event("notice", video=video, message=warning if video in warning else f"{video}: {warning}"))


def without_leading_space(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces of an answer without the whitespace some tokenizers put before its first word."""
    started = False
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
            if not started:
                continue
        yield piece


def check_file(video: str | os.PathLike[str]) -> None:
    path = Path(video)
    if not path.exists():
        raise VideoNotFoundError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise VideoNotFoundError(f"{path} is a directory; give one video file (clapper caption walks directories)")


# --- batches ------------------------------------------------------------------------------


def recoverable() -> tuple[type[BaseException], ...]:
    """Errors that fail one video, not the batch: ours, and running out of memory on a long video."""
    kinds: list[type[BaseException]] = [ClapperError, MemoryError]
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "OutOfMemoryError"):
        kinds.append(torch.OutOfMemoryError)
    return tuple(kinds)


def caption_batch(
    paths: Sequence[str | os.PathLike[str]],
    settings: Settings,
    *,
    prompt: str | None = None,
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    retry_failed: bool = False,
    on_event: OnEvent | None = None,
    loaded: Any = None,
) -> BatchSummary:
    """Caption every video under `paths` with `prompt` (default: `settings.prompt`).

    With `output`, each record is appended to that JSONL file as soon as its video is done, and
    videos already in the file are skipped (`overwrite=True` starts the file afresh,
    `retry_failed=True` drops failed records first so those videos are tried again). A video
    that fails is recorded with its error and the batch goes on. Under torchrun (WORLD_SIZE > 1)
    each process takes its share and rank 0 merges the parts into `output`.
    """
    from clapper_core.distributed import ShardedJsonl, dist_info, shard_indices

    emit = on_event or _ignore
    prompt = prompt if prompt is not None else settings.prompt
    if not prompt.strip():
        raise ConfigError("--prompt is empty: give the text to ask about each video")
    info = dist_info()
    if info.is_distributed and output is None:
        raise ConfigError("under torchrun, caption needs --output FILE.jsonl to merge the processes' results")
    videos = find_videos(paths)
    if not videos:
        raise DataError(f"no video or image files found in {', '.join(map(str, paths))} "
                        f"(looked for {', '.join(sorted(media_suffixes()))})")
    start = time.perf_counter()
    summary = BatchSummary(total=len(videos), output=str(output) if output else None,
                           rank=info.rank, world_size=info.world_size)

    sink: ShardedJsonl | None = None
    if output is not None:
        if Path(output).is_dir():
            raise ConfigError(
                f"--output {output} is a directory; give a file such as {Path(output) / 'captions.jsonl'}"
            )
        if retry_failed and not overwrite:
            if info.is_distributed:
                raise ConfigError("--retry-failed rewrites the output: run it once without torchrun")
            drop_failures(output)
        sink = ShardedJsonl(output, keys=videos, record_key=lambda obj: obj["video"], info=info,
                            resume=not overwrite)
        todo = sink.pending
        summary.skipped = sink.skipped
        if sink.skipped:
            pending = set(todo)
            skipped = [i for i in shard_indices(len(videos), info.rank, info.world_size) if i not in pending]
            summary.failed_before = failed_before(dict.fromkeys((sink.output, sink.path)), videos, skipped)
    else:
        todo = list(shard_indices(len(videos), info.rank, info.world_size))

    emit(Event("batch", total=len(todo) + summary.skipped, skipped=summary.skipped))
    # the output keeps the input order; answers that finish early wait for the ones before them
    def write(record: Record) -> None:
        if sink is not None:
            sink.append(record.to_json())
        emit(Event("record", video=record.video, record=record))

    writer = InOrder(write)
    engine = None
    try:
        if todo and loaded is None:
            device = None
            if info.is_distributed:
                from clapper_core.distributed import select_device

                device = "cpu" if select_device(info, settings.device) == "cpu" else "cuda"
            loaded = load(settings, on_event=emit, device=device)
        works = [Work(str(videos[i]), [prompt]) for i in todo]
        engine = job_engine(loaded, settings, emit, task="caption") if todo else None
        for done in closing_run(engine, works) if engine else ():
            record, video = done.record, works[done.work].video
            if record.ok:  # counted before it is written and printed: an interrupt then counts what was shown
                summary.succeeded += 1
            else:
                summary.failed += 1
                summary.failures.append((video, record.error or ""))
            writer.add(done.work, record)
            emit(Event("video_done", video=video, record=record, total=len(todo) + summary.skipped,
                       index=summary.skipped + summary.succeeded + summary.failed))
        if sink is not None:
            sink.finish()
    except KeyboardInterrupt as exc:
        raise BatchInterrupted(summary) from exc
    finally:
        writer.flush()  # interrupted: the answers finished out of order are kept too, and a re-run skips them
        if sink is not None:
            sink.close()
        summary.seconds = time.perf_counter() - start
        summary.engine = engine.stats if engine is not None else None
    return summary


def closing_run(engine: Any, works: list[Work]) -> Iterator[Any]:
    """`engine.run(works)`, closed as soon as the caller stops (Ctrl-C): its decode workers stop at once."""
    with closing(engine.run(works)) as results:
        yield from results


def job_engine(loaded: Any, settings: Settings, emit: OnEvent, *, task: str, sampling: Any = None,
               generation: Any = None) -> Any:
    """The batched engine for a job, with the settings' batch size (or the device's default)."""
    from clapper_core.engine import Engine, EngineConfig

    config = EngineConfig.for_device(loaded.hardware.device, settings.batch_size_number)
    return Engine(loaded, config, sampling or settings.sampling_config(), generation or settings.generation_config(),
                  model=settings.model, task=task, on_event=emit, backend=_open_backend(loaded, config))
