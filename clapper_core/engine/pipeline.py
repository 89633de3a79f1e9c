"""Decoding that runs ahead of the model: a bounded pool of worker threads (or processes).

    source = Prefetch(paths, decode_one, workers=2, depth=8)
    for index, result in source:    # result is decode_one(paths[index]), or the exception it raised
        ...
    source.close()

Threads or forked processes. PyAV decodes and scales frames with the GIL released, and so do the torch
resize and normalize that follow, but the Python around them holds it, and so does most of a small
model's step: on a CPU the model's thread and decode threads take turns. Processes (`processes=True`,
forked as torch's DataLoader forks its workers; the tensors they return come back through shared
memory) do not, and `Engine` uses them on a CPU under Linux: `bench/throughput.py --decode
threads,processes` measures both on the same videos (docs/benchmarks.md). At most `depth` results wait
at any time, decoded or being decoded, so memory is bounded by the queue, never by the number of videos.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Prefetch(Iterator[tuple[int, Any]]):
    """`fn(item)` for every item, `workers` at a time and up to `depth` ahead of the consumer, in input order.

    Iterating yields `(index, result)`; an exception of a `catch` type takes the result's place (one bad video
    does not stop the others), anything else is raised. `ready()` says whether the next result is there
    without waiting. `workers=0` runs `fn` in the caller's thread when the result is asked for; with
    `processes=True` the workers are forked processes (`fn` is inherited, not pickled; results are pickled).
    """

    def __init__(self, items: Sequence[T], fn: Callable[[T], R], *, workers: int, depth: int,
                 catch: tuple[type[BaseException], ...] = (Exception,), processes: bool = False) -> None:
        self.items, self.fn, self.catch = items, fn, catch
        self.depth = max(depth, workers, 1)
        self.pool = _pool(workers, processes, fn, catch)
        self.processes = processes and self.pool is not None
        self.queue: deque[Future] = deque()
        self.submitted = self.taken = 0
        with _frozen_heap() if self.processes else nullcontext():  # processes are forked at the first submit
            self._fill()

    @property
    def exhausted(self) -> bool:
        return self.taken >= len(self.items)

    @property
    def left(self) -> int:
        """Items not taken yet."""
        return len(self.items) - self.taken

    def ready(self) -> bool:
        return self.pool is None or (bool(self.queue) and self.queue[0].done())

    def ready_count(self) -> int:
        """Results that can be taken now without waiting (all that are left when the caller's thread decodes)."""
        if self.pool is None:
            return self.left
        n = 0
        while n < len(self.queue) and self.queue[n].done():
            n += 1
        return n

    def __next__(self) -> tuple[int, Any]:
        if self.exhausted:
            raise StopIteration
        if self.pool is None:
            result = _call(self.fn, self.items[self.taken], self.catch)
        else:
            result = self.queue.popleft().result()
        self.taken += 1
        self._fill()
        return self.taken - 1, result

    def _fill(self) -> None:
        while self.pool is not None and self.submitted < len(self.items) and len(self.queue) < self.depth:
            item = self.items[self.submitted]
            call = self.pool.submit(_call_installed, item) if self.processes else \
                self.pool.submit(_call, self.fn, item, self.catch)
            self.queue.append(call)
            self.submitted += 1

    def close(self) -> None:
        """Stop decoding: a consumer that stops early (Ctrl-C, an error) does not wait for the rest."""
        if self.pool is not None:
            for future in self.queue:
                future.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)


def _call(fn: Callable[[T], R], item: T, catch: tuple[type[BaseException], ...]) -> R | BaseException:
    try:
        return fn(item)
    except catch as exc:
        return exc


def _pool(workers: int, processes: bool, fn: Callable, catch: tuple[type[BaseException], ...]) -> Executor | None:
    if workers == 0:
        return None
    if not processes:
        return ThreadPoolExecutor(workers, thread_name_prefix="clapper-decode")
    import torch.multiprocessing  # its pickler sends tensors through shared memory

    # fork, as DataLoader workers start: the worker inherits `fn` (a bound method of the engine, model and
    # all) instead of unpickling it; it never touches CUDA
    return ProcessPoolExecutor(workers, mp_context=torch.multiprocessing.get_context("fork"),
                               initializer=_install, initargs=(fn, catch, os.getpid()))


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Around a fork: the objects alive now are moved out of the garbage collector's sight (gc.freeze), so that a
    collection in a worker does not write to every object the parent had, copying the memory pages it shares with
    the parent (the advice of the gc module's documentation for forking servers)."""
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


_installed: dict[str, Any] = {}  # in a decode process: the function it runs and the errors it returns


def _install(fn: Callable, catch: tuple[type[BaseException], ...], parent: int) -> None:
    import torch

    _die_with(parent)
    gc.enable()  # forked with the parent's collector off and its objects frozen (_frozen_heap): collect new ones
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it closes the pool)
    torch.set_num_threads(1)  # one core a worker, as in DataLoader workers
    _installed.update(fn=fn, catch=catch)


def _die_with(parent: int) -> None:
    """A decode process ends when its parent does, even when the parent is killed outright: otherwise it would wait
    for work forever, holding the parent's stdout and stderr open (as DataLoader's workers watch their parent)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed with the parent
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent was gone before the line above
        os._exit(0)


def _call_installed(item: Any) -> Any:
    return _call(_installed["fn"], item, _installed["catch"])
