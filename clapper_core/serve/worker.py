"""One model, one worker thread, a first-in first-out queue of jobs.

A request becomes a `Job`; the worker takes jobs in arrival order, finds the video's session in the
cache (or decodes and encodes it), and generates the answer, handing `Ready`, `Piece`s and then
`Done` (or `Failed`) to that job's own event queue on the server's event loop. Each job has its own
queue, so no stream can carry another request's tokens. A job whose client went away is cancelled:
the worker skips it if it is still waiting, or stops generating at the next token.

The queue and the `Job` are the seam for a batched engine: it would take several jobs from the same
queue and emit the same events per job, one generation step for all of them at a time.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from clapper_core import errors as E
from clapper_core.records import Record, Timings
from clapper_core.serve.access import LocalVideo, RequestError
from clapper_core.serve.cache import Entry, SessionCache
from clapper_core.serve.schema import Conversation


@dataclass(frozen=True)
class Ready:
    visual_tokens: int


@dataclass(frozen=True)
class Piece:
    text: str


@dataclass(frozen=True)
class Done:
    finish_reason: str  # "stop" | "length"
    usage: dict
    record: Record


@dataclass(frozen=True)
class Failed:
    error: RequestError


@dataclass
class Job:
    conversation: Conversation
    video: LocalVideo
    sampling: Any  # SamplingConfig
    generation: Any  # GenerationConfig
    stops: tuple[str, ...]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop has closed: the server is shutting down
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()


class StopFilter:
    """Cuts the answer at the first of `stops`, holding back text that may be the start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.pending, self.hit = stops, "", False

    def feed(self, piece: str) -> str:
        if not self.stops:
            return piece
        self.pending += piece
        found = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.pending, self.hit = self.pending[: min(found)], "", True
            return out
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])), default=0)
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out):]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class ModelWorker:
    def __init__(self, loaded: Any, cache: SessionCache, *, model_name: str, max_queue: int) -> None:
        self.loaded, self.cache, self.model_name, self.max_queue = loaded, cache, model_name, max_queue
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="clapper-model", daemon=True)
        self.served = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, job: Job) -> None:
        if not self._thread.is_alive():
            raise RequestError("the server is shutting down", 503, kind="server_error")
        if self._queue.qsize() >= self.max_queue:
            raise RequestError(f"the server is busy ({self.max_queue} requests waiting); try again shortly", 429,
                               code="rate_limit_exceeded", kind="rate_limit_error")
        self._queue.put(job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.cancelled.is_set():  # its client left while it waited: nothing to do
                job.video.discard()
                continue
            self._serve(job)

    def _serve(self, job: Job) -> None:
        key = None
        try:
            key, entry, fresh = self._entry(job)
            job.emit(Ready(entry.session.num_visual_tokens))
            job.emit(self._generate(job, entry, fresh))
            self.served += 1
        except RequestError as exc:
            job.emit(Failed(exc))
        except E.ClapperError as exc:
            job.emit(Failed(_as_request_error(exc)))
        except MemoryError:
            job.emit(Failed(RequestError("out of memory for this video; ask with fewer frames (max_frames)", 503,
                                         kind="server_error")))
        except Exception as exc:  # a bug: logged with its traceback, answered as a 500, the server goes on
            traceback.print_exception(exc, file=sys.stderr)
            job.emit(Failed(RequestError(f"internal error ({type(exc).__name__}); see the server's log", 500,
                                         kind="server_error")))
        finally:
            job.video.discard()
            if key is not None:
                self.cache.reweigh(key)

    def _entry(self, job: Job) -> tuple[tuple, Entry, bool]:
        """The video's session from the cache, or decoded and encoded now (and kept)."""
        from clapper_core.generation import VideoSession
        from clapper_core.hardware import decoding_mode
        from clapper_core.records import clip_fields
        from clapper_core.video import load_clip

        s = job.sampling
        key = (job.video.digest, s.fps, s.max_frames, s.num_frames, s.segment_size, job.conversation.system)
        entry = self.cache.get(key)
        if entry is not None:
            return key, entry, False
        t0 = time.perf_counter()
        clip = load_clip(job.video.path, s)
        t1 = time.perf_counter()
        session = VideoSession(self.loaded, clip, system=job.conversation.system,
                               decoding=decoding_mode(self.loaded.hardware.device, warm=True))
        clip_info = dict(clip_fields(clip), decode_s=t1 - t0, encode_s=session.encode_s)
        entry = Entry(session, clip_info)
        self.cache.put(key, entry)
        return key, entry, True

    def _generate(self, job: Job, entry: Entry, fresh: bool) -> Done:
        from clapper_core.runner import without_leading_space

        session, conv = entry.session, job.conversation
        stop = StopFilter(job.stops)
        answer = []
        stream = session.stream(conv.question, job.generation, history=conv.history)
        try:
            for piece in without_leading_space(stream):  # the answer as `clapper ask` gives it
                if job.cancelled.is_set():
                    break
                if text := stop.feed(piece):
                    answer.append(text)
                    job.emit(Piece(text))
                if stop.hit:
                    break
        finally:
            stream.close()  # runs the generator's own cleanup, which records its stats
        if not stop.hit and (rest := stop.flush()):
            answer.append(rest)
            job.emit(Piece(rest))
        stats = session.last_stats
        finish = "stop" if stop.hit or stats.stopped else "length"
        usage = {
            "prompt_tokens": stats.context_tokens,
            "completion_tokens": stats.new_tokens,
            "total_tokens": stats.context_tokens + stats.new_tokens,
            "prompt_tokens_details": {"cached_tokens": stats.context_tokens - stats.prompt_tokens},
            "visual_tokens": session.num_visual_tokens,
        }
        return Done(finish, usage, self._record(job, entry, fresh, "".join(answer), stats))

    def _record(self, job: Job, entry: Entry, fresh: bool, answer: str, stats: Any) -> Record:
        from clapper_core.records import precision_name

        url, hw, info = job.conversation.video_url, self.loaded.hardware, entry.clip
        return Record(
            video=url if not url.startswith("data:") else url.split(";", 1)[0],
            question=job.conversation.question, answer=answer, task="ask", model=self.model_name,
            device=str(hw.device), precision=precision_name(hw), frames=info["frames"],
            timestamps=info["timestamps"], segments=info["segments"], visual_tokens=entry.session.num_visual_tokens,
            duration_s=info["duration_s"],
            timings=Timings(decode_s=info["decode_s"] if fresh else 0.0, encode_s=info["encode_s"] if fresh else 0.0,
                            prefill_s=stats.prefill_s, generate_s=stats.generate_s),
            new_tokens=stats.new_tokens, tokens_per_s=stats.tokens_per_s,
        )


def _as_request_error(exc: E.ClapperError) -> RequestError:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, E.VideoNotFoundError):
        return RequestError(message, 400, code="video_not_found", param="video_url")
    if isinstance(exc, E.VideoError):
        return RequestError(message, 400, code="invalid_video", param="video_url")
    if isinstance(exc, E.ConfigError):
        return RequestError(message, 400)
    return RequestError(message, 500, kind="server_error")
