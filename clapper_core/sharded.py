"""Sharded, mergeable JSONL outputs: each rank appends its own part file, rank 0 merges.

The layout, resume and merge rules are described in `clapper_core.distributed`'s docstring,
where rank and world size come from; this module only needs a `DistInfo`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from clapper_core.distributed import DistInfo, dist_info
from clapper_core.errors import DataError

T = TypeVar("T")

_DONE_SUFFIX = ".done"


# --- sharding -------------------------------------------------------------------------


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """Indices of an `n`-item work list that belong to `rank`: every `world_size`-th one.

    Strided rather than in blocks, so that ranks get similar mixes when the list is sorted
    (by folder, by length) and finish at about the same time.
    """
    assert 0 <= rank < world_size, (rank, world_size)
    return range(rank, n, world_size)


def shard(items: Sequence[T], info: DistInfo) -> list[T]:
    """This rank's share of `items` (the whole list for a single process)."""
    return [items[i] for i in shard_indices(len(items), info.rank, info.world_size)]


def shard_grouped(groups: Sequence[str], rank: int, world_size: int) -> list[int]:
    """Indices that belong to `rank` when items of one group must stay on one rank.

    Groups (several questions about one video, say) are dealt out strided in order of
    first appearance; the result is in work-list order.
    """
    assert 0 <= rank < world_size, (rank, world_size)
    number: dict[str, int] = {}
    for g in groups:
        number.setdefault(g, len(number))
    return [i for i, g in enumerate(groups) if number[g] % world_size == rank]


# --- part files -----------------------------------------------------------------------


def part_path(output: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """Where `rank` of `world_size` appends its results: `<output>.rank<k>-of-<n>`."""
    output = Path(output)
    return output.with_name(f"{output.name}.rank{rank}-of-{world_size}")


def _done_path(part: Path) -> Path:
    return part.with_name(part.name + _DONE_SUFFIX)


def find_parts(output: str | os.PathLike[str]) -> list[tuple[int, int, Path]]:
    """Every part file next to `output`, as (world_size, rank, path), sorted."""
    output = Path(output)
    found = []
    if not output.parent.is_dir():
        return found
    prefix = output.name + ".rank"
    for path in output.parent.iterdir():
        name = path.name
        if not name.startswith(prefix) or name.endswith(_DONE_SUFFIX):
            continue
        rank_s, sep, world_s = name[len(prefix):].partition("-of-")
        if sep and rank_s.isdigit() and world_s.isdigit():
            found.append((int(world_s), int(rank_s), path))
    return sorted(found)


def read_jsonl(path: Path, *, repair: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The complete lines of a JSONL file as (raw line, parsed object).

    A last line without its newline, or one that does not parse, is what a killed process
    leaves: it is skipped, and with `repair=True` cut off the file so appending can go on.
    A bad line in the middle means the file is not ours to resume from.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out: list[tuple[str, dict[str, Any]]] = []
    good_bytes = 0
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", errors="replace")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            if number == len(lines) and not tail:
                break  # torn last line that happened to end in a newline
            raise DataError(
                f"{path} line {number} is not JSON: move the file away or pass --overwrite to start over."
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {number} is not a JSON object: move the file away to start over.")
        out.append((text, obj))
        good_bytes += len(raw) + 1
    if repair and good_bytes != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return out


class ShardedJsonl:
    """A JSONL output written by many ranks and merged into one file.

    `keys` is the whole work list (one unique key per item, the same on every rank);
    `record_key` finds an item's key in one of its output lines (a parsed JSON object).
    `groups`, when given, names a group per key (its video, say): a group stays on one rank,
    so work shared within it (decoding and encoding the video) is done once.
    `pending` is this rank's share of the work list, minus the keys any earlier run already
    wrote; `append` adds one finished line; `finish` merges.
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        *,
        keys: Sequence[str],
        record_key: Callable[[dict[str, Any]], str],
        info: DistInfo | None = None,
        resume: bool = True,
        groups: Sequence[str] | None = None,
    ) -> None:
        self.output = Path(output)
        self.keys = list(keys)
        self.record_key = record_key
        self.info = info if info is not None else dist_info()
        self.resume = resume
        self._position = {key: i for i, key in enumerate(self.keys)}
        if len(self._position) != len(self.keys):
            seen: set[str] = set()
            dup = next(k for k in self.keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            raise DataError(f"the work list names {dup!r} twice: give every item a unique id.")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.output if not self.info.is_distributed else part_path(
            self.output, self.info.rank, self.info.world_size)
        self._prepare()
        done = self._done_keys()
        if groups is None:
            mine: Sequence[int] = shard_indices(len(self.keys), self.info.rank, self.info.world_size)
        else:
            assert len(groups) == len(self.keys), "one group per key"
            mine = shard_grouped(groups, self.info.rank, self.info.world_size)
        self.pending: list[int] = [i for i in mine if self.keys[i] not in done]
        self.skipped = len(mine) - len(self.pending)
        self._file = open(self.path, "a", encoding="utf-8")
        self.written = 0

    # -- set-up --------------------------------------------------------------------

    def _prepare(self) -> None:
        done_marker = _done_path(self.path)
        if done_marker.exists():
            done_marker.unlink()
        if not self.resume:
            self.path.write_text("", encoding="utf-8")
            return
        if not self.info.is_distributed:
            self._fold_stale_parts()
        read_jsonl(self.path, repair=True)

    def _stale_parts(self) -> list[Path]:
        """Parts left by a run with another number of processes."""
        return _stale(self.output, self.info.world_size)

    def _fold_stale_parts(self) -> None:
        """A single process resuming a parallel run: move its parts into the output first."""
        stale = self._stale_parts()
        if not stale:
            return
        existing = read_jsonl(self.output, repair=True)
        have = {self.record_key(obj) for _, obj in existing}
        lines = _ordered(_lines_of(stale), position=self._position, record_key=self.record_key, exclude=have)
        with open(self.output, "a", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
        for path in stale:
            path.unlink()
            _done_path(path).unlink(missing_ok=True)

    def _done_keys(self) -> set[str]:
        if not self.resume:
            return set()
        sources = [self.output, self.path, *self._stale_parts()]
        return {self.record_key(obj) for path in dict.fromkeys(sources) for _, obj in read_jsonl(path)}

    # -- writing -------------------------------------------------------------------

    def append(self, line: str) -> None:
        """Append one finished JSON object (a single line, no newline) and flush it."""
        assert "\n" not in line, "one JSON object per line"
        self._file.write(line + "\n")
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ShardedJsonl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- merging -------------------------------------------------------------------

    def finish(self, *, timeout_s: float | None = None, poll_s: float = 0.5) -> Path | None:
        """Close this rank's part; on rank 0, wait for every rank, merge and clean up.

        Returns the merged output on rank 0 (and for a single process), None elsewhere.
        """
        self.close()
        if not self.info.is_distributed:
            return self.output
        marker = {"run_id": self.info.run_id, "lines": self.written}
        _done_path(self.path).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        if not self.info.is_main:
            return None
        self._wait_for_ranks(timeout_s, poll_s)
        return self._merge()

    def _wait_for_ranks(self, timeout_s: float | None, poll_s: float) -> None:
        world = self.info.world_size
        start = time.monotonic()
        told = False
        while True:
            missing = [r for r in range(world) if not self._rank_finished(r)]
            if not missing:
                return
            waited = time.monotonic() - start
            if timeout_s is not None and waited > timeout_s:
                raise DataError(
                    f"ranks {', '.join(map(str, missing))} of {world} did not finish within {timeout_s:.0f} s: "
                    f"run the same command again to resume, or merge with `merge_parts({str(self.output)!r})`."
                )
            if not told and waited > 5:
                print(f"Waiting for ranks {', '.join(map(str, missing))} to finish...", file=sys.stderr)
                told = True
            time.sleep(poll_s)

    def _rank_finished(self, rank: int) -> bool:
        marker = _done_path(part_path(self.output, rank, self.info.world_size))
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return info.get("run_id", "") == self.info.run_id

    def _merge(self) -> Path:
        return _merge(self.output, keys=self.keys, record_key=self.record_key,
                      world_size=self.info.world_size, resume=self.resume)


def _stale(output: Path, world_size: int) -> list[Path]:
    return [p for world, _, p in find_parts(output) if world != world_size]


def _ordered(
    pairs: Iterable[tuple[str, dict[str, Any]]],
    *,
    position: dict[str, int],
    record_key: Callable[[dict[str, Any]], str],
    exclude: set[str],
) -> list[str]:
    """Lines in work-list order, each key once; keys not in the list go last, in file order."""
    best: dict[str, str] = {}
    for line, obj in pairs:
        key = record_key(obj)
        if key not in exclude and key not in best:
            best[key] = line
    end = len(position)
    return [best[k] for k in sorted(best, key=lambda k: position.get(k, end))]


def _lines_of(paths: Iterable[Path]) -> list[tuple[str, dict[str, Any]]]:
    return [pair for path in paths for pair in read_jsonl(path)]


def _merge(
    output: Path,
    *,
    keys: Sequence[str],
    record_key: Callable[[dict[str, Any]], str],
    world_size: int,
    resume: bool,
) -> Path:
    """Output lines, then older-run parts, then this run's parts (each in work-list order)."""
    position = {key: i for i, key in enumerate(keys)}
    stale = _stale(output, world_size)
    if resume:
        existing = read_jsonl(output, repair=True)
    else:
        existing = []
        for path in stale:
            path.unlink()
            _done_path(path).unlink(missing_ok=True)
        stale = []
    have = {record_key(obj) for _, obj in existing}
    lines = [line for line, _ in existing]
    older = _ordered(_lines_of(stale), position=position, record_key=record_key, exclude=have)
    have |= {record_key(json.loads(line)) for line in older}
    current = [part_path(output, r, world_size) for r in range(world_size)]
    lines += older + _ordered(_lines_of(current), position=position, record_key=record_key, exclude=have)
    tmp = output.with_name(output.name + ".merging")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, output)
    for path in stale + current:
        path.unlink(missing_ok=True)
        _done_path(path).unlink(missing_ok=True)
    return output


def merge_parts(
    output: str | os.PathLike[str],
    *,
    keys: Sequence[str],
    record_key: Callable[[dict[str, Any]], str],
) -> Path:
    """Merge whatever part files lie next to `output` into it, without waiting for ranks.

    For a run whose ranks were stopped before rank 0 could merge; the same order rules as
    `ShardedJsonl.finish` (the largest process count found counts as the latest run).
    """
    output = Path(output)
    parts = find_parts(output)
    if not parts:
        return output
    world = max(w for w, _, _ in parts)
    return _merge(output, keys=keys, record_key=record_key, world_size=world, resume=True)
