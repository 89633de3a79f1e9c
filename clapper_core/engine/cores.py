"""The CPU's cores shared between the decode workers and the model's thread.

On a GPU the model's thread mostly waits for the device, and the decode workers have the CPU to themselves. On the
CPU both compute on the same cores: torch's intra-op threads (one a core by default) and the decode workers. When
decoding is a large part of the work (short videos, a small model), the threads that want a core outnumber the
cores, and torch's threads, which spin between operators, take time the workers need. So `CoreShare` compares the
two costs on the first videos the model encodes, in user CPU time (`cpu_seconds`; waiting for a core does not
count). When decoding them took at least a tenth of what encoding them did, each decode worker gets a core: the
model's thread keeps the cores left (at least one thread) for the rest of the run. Torch's setting comes back when
the run ends.

The two costs are far apart on both sides, and the tenth leaves room either way for the first pass being slowed by
the workers decoding beside it. The demo model encodes a video in a few milliseconds, and decoding it takes half
as long to several times that. SigLIP-so400m takes seconds a video on the CPU, hundreds of times its decoding, and the
model keeps torch's threads. Measured by bench/throughput.py (docs/benchmarks.md).
"""

from __future__ import annotations

import time
from typing import Any

try:
    import resource
except ImportError:  # Windows
    resource = None

from clapper_core.hardware import usable_cores

DECODE_SHARE = 0.1  # decoding time, as a share of encoding time, from which the decode workers get a core each


def cpu_seconds() -> float:
    """User CPU seconds of the calling thread so far. User time only: after a decode process is forked, the pages
    the model's thread writes first are copied, and that system time is the fork's, not the work's."""
    try:
        return resource.getrusage(resource.RUSAGE_THREAD).ru_utime
    except (AttributeError, OSError):  # no per-thread usage outside Linux
        return time.thread_time()


class CoreShare:
    """`with CoreShare(threads, workers, on_cpu=...) as cores:` around a run, and `cores.encoded(decode_s, encode_s)`
    after each encode pass: the CPU seconds its videos took to decode (in their workers) and to encode (on the
    model's thread). `threads`: None balances (on the CPU, with decode workers), 0 leaves torch's setting alone,
    n > 0 gives the model's thread n torch threads for the run."""

    def __init__(self, threads: int | None, workers: int, *, on_cpu: bool) -> None:
        self.fixed = threads or None
        self.balancing = threads is None and on_cpu and workers > 0
        self.workers = workers
        self.before: int | None = None  # torch's threads before the run, while they are changed
        self.decision = ""  # what was decided and why (the bench prints it)

    def __enter__(self) -> "CoreShare":
        if self.fixed:
            self._set(self.fixed)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)
            self.before = None

    def encoded(self, decode_s: float, encode_s: float) -> None:
        """The first encode pass decides: the model's torch threads that fit beside the decode workers."""
        if not self.balancing:
            return
        import torch

        self.balancing = False
        threads = torch.get_num_threads()
        fit = max(1, min(threads, usable_cores() - self.workers)) if decode_s >= DECODE_SHARE * encode_s else threads
        self.decision = (f"decoding took {decode_s:.3f} CPU s and encoding {encode_s:.3f}: the model runs on {fit} "
                         f"torch thread{'s' if fit > 1 else ''}" + (" (torch's setting)" if fit == threads else ""))
        if fit < threads:
            self._set(fit)

    def _set(self, threads: int) -> None:
        import torch

        if self.before is None:
            self.before = torch.get_num_threads()
        torch.set_num_threads(threads)
