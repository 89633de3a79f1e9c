"""From records to batches in DataLoader workers: length-grouped, deterministic, resumable, sharded by rank.

    records ──► LengthGroupedBatches (indices; main process) ──► workers: decode, sample, preprocess,
                tokenize, collate ──► pinned batches, prefetched ──► the training loop

The order of batches is a pure function of (seed, epoch, rank, world size): the same with 0 or N
workers (torch's DataLoader hands batches back in sampler order), and a run resumed at
(epoch, batch) gets exactly the batches an uninterrupted run would have had from there on.
Each global batch of `batch_size * world` records is split between the ranks, so within an
epoch no two ranks ever see the same record.

A record whose video is missing or cannot be decoded is dropped from its batch inside the
worker and reported with the batch (`Batch.skipped`), so the loop can count it.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from clapper_core.errors import ClapperError
from clapper_core.train.batches import Example, ExampleBuilder, collate
from clapper_core.train.data import SkippedRecord, TrainRecord

GROUP = 32  # global batches sorted together by length: bigger, less padding; smaller, more shuffled


@dataclass(frozen=True)
class Failed:
    """A record whose video could not be used; travels back from the worker in place of its Example."""

    record: SkippedRecord


class VideoExamples(Dataset):
    """Map-style dataset over records: `ds[i]` decodes, samples and tokenizes record i (in a worker)."""

    def __init__(self, records: Sequence[TrainRecord], builder: ExampleBuilder):
        self.records = records
        self.builder = builder

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Example | Failed:
        rec = self.records[i]
        try:
            return self.builder(rec)
        except (ClapperError, OSError) as exc:  # missing, unreadable or empty video: counted, never fatal
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return Failed(SkippedRecord(rec.line, f"video {rec.video}: {reason}", rec.source))


@dataclass
class Batch:
    tensors: dict | None  # collate()'s dict, or None when every record of the batch failed
    ids: list[str]  # the records that made it
    skipped: list[SkippedRecord] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ids)

    def pin_memory(self) -> Batch:  # called by the DataLoader's pinning thread
        if self.tensors is not None:
            self.tensors = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in self.tensors.items()}
        return self


class Collate:
    """Pads the examples of one batch together (in the worker); failed records are left out and listed."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[Example | Failed]) -> Batch:
        good = [x for x in items if isinstance(x, Example)]
        skipped = [x.record for x in items if isinstance(x, Failed)]
        return Batch(collate(good, pad_id=self.pad_id) if good else None, [x.record_id for x in good], skipped)


class LengthGroupedBatches(Sampler):
    """This rank's batches of record indices, from (epoch, batch) onwards, epoch after epoch.

    Per epoch: a seeded permutation, padded with its own first records to whole global batches;
    every GROUP global batches are sorted by estimated length and cut into global batches (so a
    batch holds records of similar length, little padding); the batches are shuffled (seeded);
    rank r takes records r, r + world, ... of each global batch.
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 epoch: int = 0, start: int = 0):
        assert 0 <= rank < world and len(lengths) > 0
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.start = epoch, start

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.lengths) / (self.batch_size * self.world))

    def global_batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        n, size = len(self.lengths), self.batch_size * self.world
        perm = torch.randperm(n, generator=g).tolist()
        total = self.batches_per_epoch * size
        perm = (perm * math.ceil(total / n))[:total]  # whole global batches: repeat the first records
        batches: list[list[int]] = []
        for lo in range(0, total, size * GROUP):
            chunk = sorted(perm[lo : lo + size * GROUP], key=lambda i: -self.lengths[i])  # stable: seeded ties
            batches += [chunk[k : k + size] for k in range(0, len(chunk), size)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return [batches[k] for k in order]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.epoch, self.start
        while True:  # endless: the loop stops at its step count
            for batch in self.global_batches(epoch)[start:]:
                yield batch[self.rank :: self.world]
            epoch, start = epoch + 1, 0


def estimate_length(record: TrainRecord, *, fps: float, max_frames: int, tokens_per_frame: float) -> int:
    """Tokens a record will take, before decoding: its text (~4 characters a token) and, when the layout
    tells the video's length, its frames."""
    frames = min(max_frames, max(1, round(fps * record.seconds))) if record.seconds else 0
    return record.text_chars // 4 + round(frames * tokens_per_frame)


def _quiet_worker(_: int) -> None:
    # Ctrl-C is the main process's to handle (it saves a checkpoint); a worker killed by it would
    # take the batches it holds with it. One thread each: the workers are the parallelism.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def make_loader(dataset: VideoExamples, sampler: LengthGroupedBatches, *, pad_id: int, num_workers: int = 0,
                prefetch: int = 2, pin_memory: bool = False) -> DataLoader:
    """The DataLoader of a run: `num_workers` processes decode ahead, `prefetch` batches each."""
    extra = dict(prefetch_factor=prefetch, persistent_workers=False, worker_init_fn=_quiet_worker) \
        if num_workers > 0 else {}
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=Collate(pad_id), num_workers=num_workers,
                      pin_memory=pin_memory, **extra)
