"""The files of a caption batch: which videos a walk finds, what an output already holds, the summary.

`clapper_core.runner.caption_batch` uses these; they are importable without torch or PyAV.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapper_core.errors import VideoNotFoundError

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv .gif".split()
)


def media_suffixes() -> frozenset[str]:
    """What a directory walk takes: the video extensions and the image ones (one-frame videos)."""
    from clapper_core.video import IMAGE_SUFFIXES  # PyAV loads here, not when the CLI starts

    return VIDEO_EXTENSIONS | frozenset(IMAGE_SUFFIXES)


def find_videos(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Every video under `paths`, in a stable order: files as given, directories walked recursively.

    Inside a directory, videos and images (`media_suffixes`) are sorted by path and hidden files
    and folders are skipped; a file named directly is taken whatever its extension. Each video
    appears once.
    """
    found: list[str] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise VideoNotFoundError(f"{path}: no such file or directory; check the path")
        candidates = [path] if path.is_file() else _walk(path)
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(str(candidate))
    return found


def _walk(directory: Path) -> list[Path]:
    out = []
    suffixes = media_suffixes()
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root, f) for f in sorted(files)
                if not f.startswith(".") and Path(f).suffix.lower() in suffixes]
    return sorted(out, key=lambda p: p.as_posix())


@dataclass
class BatchSummary:
    total: int = 0  # videos found
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output file
    failed_before: int = 0  # of the skipped: recorded as failed by an earlier run
    output: str | None = None
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (video, error)
    rank: int = 0
    world_size: int = 1
    engine: Any = None  # the engine's EngineStats, when the batch ran

    @property
    def ok(self) -> bool:
        """No failure, in this run or recorded by an earlier one for these videos."""
        return self.failed == 0 and self.failed_before == 0

    @property
    def saved(self) -> int:
        """The results for these videos in the output file (this process's share under torchrun)."""
        return self.skipped + self.succeeded + self.failed if self.output else 0

    def describe(self) -> str:
        text = f"{self.succeeded} captioned, {self.failed} failed, {self.skipped} skipped (already in the output)"
        text += f" of {self.total} videos in {self.seconds:.1f} s"
        if self.engine is not None and self.engine.videos:
            shares = ", ".join(f"{name} {share:.0%}" for name, share in self.engine.shares().items())
            text += f" ({self.engine.videos_per_min:.1f} videos/min; the model's time: {shares})"
        if self.world_size > 1:
            text += f" on rank {self.rank} of {self.world_size}"
        text += f"; results in {self.output}" if self.output else ""
        if self.failed_before:
            n = self.failed_before
            text += (f"\n{n} video{'s' * (n != 1)} failed in an earlier run (recorded in {self.output}); "
                     "add --retry-failed to try them again")
        return text


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during `caption_batch`: still an interrupt, carrying what was done (`summary`)."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__()
        self.summary = summary


def failed_before(outputs: Iterable[str | os.PathLike[str]], videos: Sequence[str], skipped: Iterable[int]) -> int:
    """How many of the skipped videos (indices into `videos`) the output files record as failed."""
    from clapper_core.distributed import read_jsonl

    failed: set[str] = set()
    for output in outputs:
        for _, obj in read_jsonl(Path(output)):
            (failed.add if obj.get("error") is not None else failed.discard)(obj.get("video"))
    return sum(videos[i] in failed for i in skipped)


def drop_failures(output: str | os.PathLike[str]) -> int:
    """Remove failed records from a caption output so that a re-run tries those videos again."""
    from clapper_core.distributed import read_jsonl

    path = Path(output)
    lines = read_jsonl(path, repair=True)
    keep = [line for line, obj in lines if obj.get("error") is None]
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, path)
    return len(lines) - len(keep)
