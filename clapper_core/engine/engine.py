"""The engine: many videos in, one `Record` per question out, decoding ahead and generating in batches.

    engine = Engine(loaded, EngineConfig(batch_size=8), sampling, generation, model="clapper-demo")
    for done in engine.run([Work("a.mp4", ["Describe the video."]), Work("b.mp4", [...])]):
        print(done.work, done.question, done.record.answer)      # in completion order

Decode workers (`pipeline.Prefetch`) read the next videos while the model works. The model's thread
takes the videos that are ready, as many as the batch has free places, encodes them in one pass and
queues one row per question; every step of the LLM batch then produces one token for each row. Rows
that end make room for the next videos, which join together once a quarter of the batch is free
(`EngineConfig.refill`). Results come in completion order with their indices:
a caller that writes a file in input order restores it, a caller that streams does not wait.

A video that cannot be decoded or encoded gets its error record and the others go on; one that fails
while its batch-mates generate fails alone too, because rows are independent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from clapper_core.defaults import BATCH_SIZE_CPU, BATCH_SIZE_CUDA, DECODE_WORKERS, ENCODE_FRAMES
from clapper_core.engine.cores import CoreShare, cpu_seconds
from clapper_core.engine.pipeline import Prefetch
from clapper_core.errors import ConfigError
from clapper_core.records import Record, Timings, clip_fields, precision_name


@dataclass(frozen=True)
class EngineConfig:
    """How much runs at once: answers generated together, videos decoded ahead and the threads decoding them."""

    batch_size: int = BATCH_SIZE_CPU
    decode_workers: int = DECODE_WORKERS
    decode_processes: bool | None = None  # forked processes or threads (pipeline.py); None: see .processes_on
    prefetch: int | None = None  # videos decoded ahead of the model; default twice the batch
    encode_frames: int = ENCODE_FRAMES  # frames encoded in one pass, at most (one video may exceed it alone)
    refill: int | None = None  # free places a running batch waits for before new rows join; default a quarter
    model_threads: int | None = None  # the model's torch threads on the CPU: None balances against decoding
    #                                   (cores.py), 0 leaves torch's setting, n > 0 uses n for the run

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: give 1 or more answers generated together")
        if self.refill is not None and not 1 <= self.refill <= self.batch_size:
            raise ConfigError(f"refill={self.refill} must be between 1 and the batch size ({self.batch_size})")
        if self.decode_workers < 0:
            raise ConfigError(f"decode_workers={self.decode_workers} must be 0 (decode on the model's thread) or more")
        if self.model_threads is not None and self.model_threads < 0:
            raise ConfigError(f"model_threads={self.model_threads} must be 0 (torch's setting), 1 or more, or None")

    def processes_on(self, device: Any) -> bool:
        """Whether the decode workers are processes: as asked, else on a CPU under Linux (faster there, as the model's
        thread and the decoders no longer take turns with Python's lock; bench/throughput.py), threads on a GPU (not
        measured yet) and where forking a process that runs threads is not safe (macOS, Windows)."""
        if self.decode_processes is not None:
            return self.decode_processes
        from clapper_core.hardware import on_cuda

        return sys.platform.startswith("linux") and not on_cuda(device)

    @property
    def depth(self) -> int:
        return self.prefetch if self.prefetch is not None else 2 * self.batch_size

    @property
    def decode_threads(self) -> int:
        """FFmpeg threads per video in a decode worker (`hardware.decode_threads`)."""
        from clapper_core.hardware import decode_threads

        return decode_threads(self.decode_workers)

    @property
    def join_at(self) -> int:
        """Free places at which waiting videos join a running batch. Each join costs an encode pass and a prefill
        whose price hardly depends on how many videos share it, while a decoding step costs about the same with a
        few rows fewer: joining a quarter of the batch at a time beats joining every row alone (bench/throughput.py,
        docs/benchmarks.md)."""
        return self.refill if self.refill is not None else max(1, self.batch_size // 4)

    @staticmethod
    def for_device(device: Any, batch_size: int | None = None, **kwargs: Any) -> "EngineConfig":
        """The batch chosen per device when not given: a GPU takes many rows for the price of one."""
        if batch_size is None:
            from clapper_core.hardware import on_cuda

            batch_size = BATCH_SIZE_CUDA if on_cuda(device) else BATCH_SIZE_CPU
        return EngineConfig(batch_size=batch_size, **kwargs)


@dataclass(frozen=True)
class Work:
    """One video and the questions to ask about it."""

    video: str
    questions: Sequence[str]


@dataclass(frozen=True)
class Done:
    work: int  # index into the work list
    question: int  # index into that work's questions
    record: Record


class InOrder:
    """Results that finish out of order handed on in order: `add(i, item)` writes every item up to the first
    gap; `flush()` writes what still waits (an interrupted run keeps all it finished)."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        self.write, self.waiting, self.next = write, {}, 0

    def add(self, i: int, item: Any) -> None:
        self.waiting[i] = item
        while self.next in self.waiting:
            self.write(self.waiting.pop(self.next))
            self.next += 1

    def flush(self) -> None:
        for i in sorted(self.waiting):
            self.write(self.waiting.pop(i))


@dataclass
class EngineStats:
    """Where the time went in one `run`. decode_s adds up the decode workers' time (it overlaps the model's); the
    rest is the model thread's: wait_s (waiting for a decoded video), encode_s (vision, TimePerceiver, projector
    and the prompts' embeddings) and generate_s (prefills and decoding steps). Timings synchronize on CUDA."""

    started: float = field(default_factory=time.perf_counter)
    videos: int = 0
    answers: int = 0
    tokens: int = 0
    decode_s: float = 0.0
    encode_s: float = 0.0
    generate_s: float = 0.0
    wait_s: float = 0.0
    rows: int = 0  # answers in the LLM batch at the last step

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def videos_per_min(self) -> float:
        return 60.0 * self.videos / self.seconds if self.seconds > 0 else 0.0

    def shares(self) -> dict[str, float]:
        """Each part of the model thread's time: waiting for a decoded video, encoding, generating."""
        total = self.wait_s + self.encode_s + self.generate_s
        parts = {"decode wait": self.wait_s, "encode": self.encode_s, "generate": self.generate_s}
        return {k: (v / total if total else 0.0) for k, v in parts.items()}


@dataclass
class _Video:
    """A video in flight: its clip until the last of its questions is answered."""

    index: int
    clip: Any
    decode_s: float
    encode_s: float = 0.0
    visual_tokens: int = 0
    left: int = 0
    decode_cpu: float = 0.0  # CPU seconds its worker spent decoding it (what `CoreShare` compares)


def _timed(fn: Callable, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


class Engine:
    def __init__(self, loaded: Any, config: EngineConfig, sampling: Any, generation: Any, *, model: str,
                 task: str = "caption", on_event: Callable | None = None, backend: Any = None) -> None:
        from clapper_core.engine.backend import ModelBackend

        self.loaded, self.config, self.sampling, self.generation = loaded, config, sampling, generation
        self.model_name, self.task = model, task
        self.emit = on_event or (lambda event: None)
        self.backend = backend if backend is not None else ModelBackend(loaded, batch_size=config.batch_size)
        self.stats = EngineStats()
        self.cores: CoreShare | None = None

    # --- one video, in a decode worker ----------------------------------------------------------

    def _decode(self, work: Work) -> tuple[Any, float, float]:
        """The prepared video, and the wall and CPU seconds its worker spent on it."""
        from clapper_core.runner import check_file
        from clapper_core.video import load_clip

        t0, cpu0 = time.perf_counter(), cpu_seconds()
        check_file(work.video)
        prepared = self.backend.prepare(load_clip(work.video, self.sampling, threads=self.config.decode_threads))
        return prepared, time.perf_counter() - t0, cpu_seconds() - cpu0

    # --- the model's thread ---------------------------------------------------------------------

    def run(self, works: Sequence[Work]) -> Iterator[Done]:
        """Answer every question of every work item; `Done`s in completion order."""
        from clapper_core.hardware import on_cuda
        from clapper_core.runner import recoverable

        self.stats, videos = EngineStats(), {}
        self.cores = CoreShare(self.config.model_threads, self.config.decode_workers,
                               on_cpu=not on_cuda(self.loaded.hardware.device))
        source = Prefetch(works, self._decode, workers=self.config.decode_workers, depth=self.config.depth,
                          catch=recoverable(), processes=self.config.processes_on(self.loaded.hardware.device))
        try:
            with self.cores:
                while not source.exhausted or self.backend.busy:
                    group = yield from self._take(source, works, videos)
                    if group:
                        yield from self._encode(group, works, videos)
                    if self.backend.busy:
                        yield from self._step(works, videos)
        finally:
            source.close()

    def _take(self, source: Prefetch, works: Sequence[Work], videos: dict[int, "_Video"]
              ) -> Generator[Done, None, list[tuple[int, Any]]]:
        """The decoded videos to encode now, as many as the batch has free places and `encode_frames` allows. A
        running batch takes them only once `join_at` places are free and as many videos are decoded (fewer when
        fewer are left); an idle one waits for that many. A video that failed to decode is yielded at once."""
        group: list[tuple[int, Any]] = []
        worth = min(self.config.join_at, source.left)  # a join of fewer is not worth its encode pass and prefill
        if self.backend.busy and (self.backend.free < self.config.join_at or source.ready_count() < worth):
            return group  # the batch runs on meanwhile
        rows = frames = 0
        while (not source.exhausted and rows < self.backend.free and frames < self.config.encode_frames
               and (source.ready() or (not self.backend.busy and rows < worth))):
            t0 = time.perf_counter()
            i, result = next(source)
            self.stats.wait_s += time.perf_counter() - t0
            if isinstance(result, BaseException):
                yield from self._failed(i, works[i], result, None)
                continue
            prepared, decode_s, decode_cpu = result
            self._admit(i, prepared, decode_s, decode_cpu, works[i], videos)
            group.append((i, prepared))
            rows += len(works[i].questions)
            frames += prepared.clip.num_frames
        return group

    def _admit(self, i: int, prepared: Any, decode_s: float, decode_cpu: float, work: Work,
               videos: dict[int, "_Video"]) -> None:
        """A decoded video enters the run: its decoding time counted, its warnings passed on."""
        from clapper_core.runner import emit_clip_warnings

        self.stats.decode_s += decode_s
        emit_clip_warnings(self.emit, work.video, prepared.clip)
        videos[i] = _Video(i, prepared.clip, decode_s, left=len(work.questions), decode_cpu=decode_cpu)

    def _step(self, works: Sequence[Work], videos: dict[int, "_Video"]) -> Iterator[Done]:
        """One step of the LLM batch (waiting rows join first); the answers that ended in it."""
        answers, seconds = getattr(self.backend, "timed", _timed)(self.backend.step)
        self.stats.generate_s += seconds
        self.stats.rows = getattr(self.backend, "rows", 0)
        for answer in answers:
            yield self._done(answer, works, videos)

    def _encode(self, group: list[tuple[int, Any]], works: Sequence[Work], videos: dict[int, _Video]) -> Iterator[Done]:
        from clapper_core.runner import recoverable

        timed = getattr(self.backend, "timed", _timed)
        cpu0 = cpu_seconds()
        try:
            features, spent = timed(self.backend.encode, [p for _, p in group])
        except recoverable() as exc:  # one video too big for memory, say: encode them one by one to find it
            if len(group) == 1:
                videos.pop(group[0][0])
                yield from self._failed(group[0][0], works[group[0][0]], exc, group[0][1].clip)
                return
            for one in group:
                yield from self._encode([one], works, videos)
            return
        self.cores.encoded(sum(videos[i].decode_cpu for i, _ in group), cpu_seconds() - cpu0)
        items, feats = [], []
        for (i, prepared), f in zip(group, features):
            video = videos[i]
            video.encode_s, video.visual_tokens = spent / len(group), prepared.num_visual_tokens
            for q, question in enumerate(works[i].questions):
                items.append(((i, q), prepared, question, self.generation))
                feats.append(f)
        _, embedding = timed(self.backend.add, items, feats)
        self.stats.encode_s += spent + embedding

    def _context(self, clip: Any) -> dict[str, Any]:
        """What every record of this run says besides its video and question: the job, the model, the clip."""
        hardware = self.loaded.hardware
        return dict(task=self.task, model=self.model_name, device=str(hardware.device),
                    precision=precision_name(hardware), **(clip_fields(clip) if clip is not None else {}))

    def _done(self, answer: Any, works: Sequence[Work], videos: dict[int, _Video]) -> Done:
        from clapper_core.runner import Event

        i, q = answer.key
        video, work = videos[i], works[i]
        record = Record(video=work.video, question=work.questions[q], **self._context(video.clip))
        record.answer, record.visual_tokens = answer.text, video.visual_tokens
        record.timings = Timings(decode_s=video.decode_s, encode_s=video.encode_s,
                                 prefill_s=answer.prefill_s, generate_s=answer.generate_s)
        record.new_tokens = answer.new_tokens
        record.tokens_per_s = answer.new_tokens / answer.generate_s if answer.generate_s > 0 else 0.0
        video.decode_s = video.encode_s = 0.0  # a video's decode and encode belong to its first answer
        video.left -= 1
        if not video.left:
            del videos[i]
            self.stats.videos += 1
        self.stats.answers += 1
        self.stats.tokens += answer.new_tokens
        self.emit(Event("engine", stats=self.stats))
        return Done(i, q, record)

    def _failed(self, i: int, work: Work, exc: BaseException, clip: Any) -> Iterator[Done]:
        from clapper_core.runner import Event

        self.stats.videos += 1
        self.emit(Event("engine", stats=self.stats))
        for q, question in enumerate(work.questions):
            yield Done(i, q, Record.failure(work.video, question, exc, **self._context(clip)))
