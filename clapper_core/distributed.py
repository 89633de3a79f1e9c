"""Rank, world size and device: the one place that knows them, for caption, eval and training.

Everything that runs on several processes asks here: `dist_info()` reads torchrun's environment,
`select_device()` picks this rank's GPU (or the CPU), and training joins a process group with
`init_process_group()` and talks through `all_reduce_sum()` / `barrier()`. Built on torch.distributed
directly (not accelerate): accelerate's `PartialState` / `AcceleratorState` is a process-wide
singleton that keeps the first device and mixed precision it was built with, while one process
here runs several jobs in turn (stage 1 then stage 2 of the demo recipe, caption after eval in
tests) with their own settings; and caption / eval need no process group at all (their ranks only
share a filesystem), which accelerate would start anyway.

Data-parallel batch work: one process per GPU, any number of machines.

Launch the same command under ``torchrun`` and every process reads its place from the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), takes a deterministic share of the
work list, appends its results to its own part file, and rank 0 merges the parts into the
output once every rank is done. The merged file is byte for byte what one process would
have written. No process group is needed: ranks never talk, they only share a filesystem
(on several machines the output folder must be on shared storage).

Typical use (a JSONL output whose lines carry a key, one line per work item)::

    from clapper_core.distributed import ShardedJsonl, dist_info, select_device

    info = dist_info()                         # RANK / WORLD_SIZE / LOCAL_RANK, or a single process
    device = select_device(info, "auto")       # "cuda:<local rank>" or "cpu"
    keys = [item.key for item in work]         # the same list, in the same order, on every rank
    out = ShardedJsonl("captions.jsonl", keys=keys, record_key=lambda rec: rec["video"], info=info)
    for i in out.pending:                      # this rank's share, minus what earlier runs finished
        out.append(run(work[i]).to_json())     # one JSON object per line, flushed at once
    merged = out.finish()                      # rank 0: waits for all ranks, merges, returns the path
                                               # other ranks: return None at once

Layout on disk while a run is in flight, for ``--output captions.jsonl`` on 8 processes::

    captions.jsonl.rank0-of-8 ... captions.jsonl.rank7-of-8      # one JSONL per rank, appended
    captions.jsonl.rank3-of-8.done                                # written when rank 3 is finished

A single process (no torchrun) writes straight into the output, so a user can follow it
with ``tail -f``. Resuming works per rank: an interrupted run leaves its part files, and
the same command started again skips every key already present in the output or in any
part file (even one left by a run with another number of processes). A torn last line
from a killed process is cut off before appending.

What "exactly the output one process would have written" means here: the merged file is
the lines already in the output, then lines left by an interrupted run with a different
number of processes (in work-list order), then this run's lines (in work-list order),
each key once. A single process resuming in the same situation writes the same lines in
the same order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from clapper_core.errors import ConfigError, DeviceError


# --- where this process stands --------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a data-parallel run (rank 0 of 1 when run alone)."""

    rank: int = 0  # global index of this process, 0 <= rank < world_size
    world_size: int = 1  # number of processes across all machines
    local_rank: int = 0  # index on this machine: picks the GPU
    local_world_size: int = 1  # processes on this machine
    run_id: str = ""  # shared by every rank of one launch (torchrun's TORCHELASTIC_RUN_ID)

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ConfigError(f"WORLD_SIZE={self.world_size} is not a process count: use 1 or more.")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(
                f"RANK={self.rank} is outside 0..{self.world_size - 1} (WORLD_SIZE={self.world_size}): "
                "launch with torchrun or set both consistently."
            )
        if not 0 <= self.local_rank < max(self.local_world_size, 1):
            raise ConfigError(
                f"LOCAL_RANK={self.local_rank} is outside 0..{self.local_world_size - 1}: "
                "launch with torchrun or set LOCAL_WORLD_SIZE."
            )

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 merges, prints the summary and writes reports."""
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} (local rank {self.local_rank})"


def _env_int(env: dict[str, str] | os._Environ, name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer: unset it or launch with torchrun.") from None


def dist_info(env: dict[str, str] | None = None) -> DistInfo:
    """Read rank, world size and local rank from torchrun's environment variables.

    Without them this is a single process (rank 0 of 1). `env` defaults to `os.environ`.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    if "RANK" not in env and world > 1:
        raise ConfigError(f"WORLD_SIZE={world} is set but RANK is not: launch with torchrun or set RANK too.")
    rank = _env_int(env, "RANK", 0)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", world)
    local_rank = _env_int(env, "LOCAL_RANK", rank % max(local_world, 1))
    run_id = env.get("TORCHELASTIC_RUN_ID", "") or env.get("CLAPPER_RUN_ID", "")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank,
                    local_world_size=local_world, run_id=run_id)


def select_device(info: DistInfo, requested: str = "auto") -> str:
    """The device this rank should use: its own GPU (`cuda:<local rank>`) or the CPU.

    `requested` is "auto", "cuda" or "cpu" (as in `LoadConfig.device`). With CUDA, the
    current device is set to this rank's GPU, so code that says plain "cuda" lands there too.
    """
    if requested == "cpu":
        return "cpu"
    import torch  # late: `clapper --help` must not import torch

    if not torch.cuda.is_available():
        if requested == "cuda":
            raise DeviceError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu.")
        return "cpu"
    count = torch.cuda.device_count()
    if info.local_rank >= count:
        raise DeviceError(
            f"local rank {info.local_rank} has no GPU (this machine shows {count}): "
            f"start at most {count} processes per machine (torchrun --nproc-per-node {count})."
        )
    torch.cuda.set_device(info.local_rank)
    return f"cuda:{info.local_rank}"


# --- a process group, for training --------------------------------------------------------


def init_process_group(info: DistInfo, device: str) -> None:
    """Join torchrun's process group (nccl for GPUs, gloo for the CPU); nothing for a single process."""
    if not info.is_distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")


def all_reduce_sum(values: list[float], info: DistInfo, device: str = "cpu") -> list[float]:
    """`values` summed over every rank (unchanged for a single process)."""
    if not info.is_distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64 if not device.startswith("cuda") else torch.float32, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (nothing for a single process)."""
    if info.is_distributed:
        import torch.distributed as dist

        dist.barrier()


# --- sharded JSONL outputs live in clapper_core.sharded; importable from here too ------------

_SHARDED = ("ShardedJsonl", "find_parts", "merge_parts", "part_path", "read_jsonl", "shard", "shard_grouped",
            "shard_indices")


def __getattr__(name: str):
    # Lazy, because clapper_core.sharded imports DistInfo from this module.
    if name in _SHARDED:
        from clapper_core import sharded

        return getattr(sharded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
