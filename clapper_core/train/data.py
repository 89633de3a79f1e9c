"""Training data in the LLaVA conversation format, read defensively and without holding more than it needs.

A record is a JSON object with a video path and alternating `human` / `gpt` turns; `<video>` (or
`<image>`, as LLaVA-Video-178K writes it) in a human turn marks where the video goes:

    {"id": "a1", "video": "clips/a1.mp4",
     "conversations": [{"from": "human", "value": "<video>\\nWhat colour is the square?"},
                       {"from": "gpt", "value": "red"}]}

`--data` is a JSONL file (one record a line), a JSON file (a list of records), a folder (every
`*.json` / `*.jsonl` under it, as LLaVA-Video-178K is released: one folder per subset such as
`0_30_s_academic_v0_1/` holding `*_cap_processed.json`, `*_oe_*qa_processed.json` and
`*_mc_*qa_processed.json`), or a glob of such files. A video path is looked up under the video root
(default: the folder given, or the file's folder), then beside its annotation file.

A bad record (unparsable, video missing, no tag, empty answer, turns out of order) is counted and
skipped; the first few are kept with their file and line for the message. JSONL files are read a
line at a time and only usable records are kept, so a file whose videos are mostly missing costs
little memory. Videos that exist but cannot be decoded are found later, in the loader's workers,
and counted there (`clapper_core.train.loader`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapper_core.errors import DataError

VIDEO_TAG = "<video>"
TAGS = (VIDEO_TAG, "<image>")  # LLaVA-Video-178K marks the video with <image>
_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant"}
KEEP_SKIPPED = 20  # skipped records remembered with their reason; the rest are only counted
# LLaVA-Video-178K names each subset by its videos' length: "0_30_s_...", "30_60_s_...", "1_2_m_...", "2_3_m_...".
_SUBSET_LENGTH = re.compile(r"(?:^|/)(\d+)_(\d+)_([sm])_")


@dataclass(frozen=True, slots=True)
class TrainRecord:
    id: str
    video: str  # resolved path
    turns: tuple[tuple[str, str], ...]  # (question, answer) pairs; the video tag removed
    line: int  # where it came from (line of a JSONL file, position in a JSON list), for messages
    source: str = ""  # the annotation file's name
    seconds: float | None = None  # the video's length when the layout tells it (LLaVA-Video-178K's subsets)

    @property
    def text_chars(self) -> int:
        return sum(len(q) + len(a) for q, a in self.turns)


@dataclass(frozen=True)
class SkippedRecord:
    line: int
    reason: str
    source: str = ""


@dataclass
class TrainData:
    path: Path  # what --data named (a file, a folder or a glob)
    records: list[TrainRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)  # the first KEEP_SKIPPED
    skipped_count: int = 0
    files: list[Path] = field(default_factory=list)

    def skip(self, line: int, reason: str, source: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < KEEP_SKIPPED:
            self.skipped.append(SkippedRecord(line, reason, source))

    def describe_skipped(self, limit: int = 10) -> list[str]:
        """One line per skipped record (the first `limit`), then a count of the rest."""
        lines = [f"{s.source}:{s.line}: skipped: {s.reason}" for s in self.skipped[:limit]]
        if self.skipped_count > len(lines):
            lines.append(f"... and {self.skipped_count - len(lines)} more skipped records")
        return lines


class BadRecord(ValueError):
    """Raised inside the reader for one record; caught, counted and reported."""


def read_train_data(path: str | Path, *, video_root: str | Path | None = None) -> TrainData:
    """Parse every annotation file `path` names; bad records are counted, the first few kept in `.skipped`."""
    files, default_root = annotation_files(path)
    root = Path(video_root) if video_root is not None else default_root
    if not root.is_dir():
        raise DataError(f"video root {root} is not a directory: pass --video-root DIR holding the videos")
    data = TrainData(path=Path(path), files=files)
    for file in files:
        for line, raw in _raw_records(file):
            try:
                data.records.append(_parse(raw, line, root, file))
            except BadRecord as exc:
                data.skip(line, str(exc), file.name)
    if not data.records:
        s = data.skipped[0] if data.skipped else None
        first = f" (first problem, {s.source} line {s.line}: {s.reason})" if s else ""
        raise DataError(f"{path} holds no usable training record{first}")
    return data


def annotation_files(path: str | Path) -> tuple[list[Path], Path]:
    """The JSON / JSONL files `path` names (a file, a folder, or a glob), and the default video root."""
    p = Path(path)
    if p.is_file():
        return [p], p.parent
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        root = p
    elif glob.has_magic(str(path)):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
        root = Path(str(path)[: re.search(r"[*?\[]", str(path)).start()]).parent  # the glob's fixed folder
        root = root if str(root) else Path(".")
    else:
        raise DataError(f"training data {path} does not exist: pass a JSON or JSONL file in the LLaVA format, "
                        "a folder of them (LLaVA-Video-178K as released) or a glob")
    if not files:
        raise DataError(f"no *.json or *.jsonl annotation file under {path}: point --data at the annotation files")
    return files, root


def _raw_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number or position, parsed object or the BadRecord that parsing raised)."""
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
        f.seek(0)
        if head.startswith("["):  # a JSON list: the json module needs it whole
            try:
                items = json.load(f)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): fix it or use JSONL") \
                    from exc
            for i in range(len(items)):
                yield i + 1, items[i]
                items[i] = None  # parsed records are kept compactly; drop the dict as we go
            return
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, BadRecord(f"not valid JSON ({exc.msg})")


def _find_video(video: str, root: Path, annotation: Path) -> str:
    if os.path.isabs(video):
        return video if os.path.isfile(video) else ""
    for base in (root, annotation.parent):
        candidate = os.path.join(base, video)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return ""


def _parse(raw: Any, line: int, root: Path, annotation: Path) -> TrainRecord:
    if isinstance(raw, BadRecord):
        raise raw
    if not isinstance(raw, dict):
        raise BadRecord("not a JSON object")
    video = raw.get("video") or raw.get("video_path")
    if not isinstance(video, str) or not video:
        raise BadRecord('no "video" path')
    found = _find_video(video, root, annotation)
    if not found:
        raise BadRecord(f"video {video} not found under {root}")
    conv = raw.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise BadRecord('no "conversations" list')
    turns: list[tuple[str, str]] = []
    tagged = False
    for i in range(0, len(conv), 2):
        human, gpt = conv[i], conv[i + 1] if i + 1 < len(conv) else None
        if not (_role(human) in _HUMAN and gpt is not None and _role(gpt) in _GPT):
            raise BadRecord(f"turn {i + 1} is not a human turn followed by a gpt turn")
        question, answer = str(human.get("value", "")), str(gpt.get("value", ""))
        for tag in TAGS:
            tagged = tagged or tag in question
            question = question.replace(tag, "")
        question = question.strip()
        if not answer.strip():
            raise BadRecord(f"empty answer in turn {i + 2}")
        if not question:
            raise BadRecord(f"empty question in turn {i + 1}")
        turns.append((question, answer.strip()))
    if not tagged:
        raise BadRecord(f"no {VIDEO_TAG} (or <image>) tag in any human turn")
    return TrainRecord(id=str(raw.get("id", line)), video=found, turns=tuple(turns), line=line,
                       source=annotation.name, seconds=_subset_seconds(annotation, raw.get("data_source")))


def _subset_seconds(annotation: Path, data_source: Any) -> float | None:
    """The middle of the length range a LLaVA-Video-178K subset is named after ("30_60_s" -> 45 s)."""
    for name in (str(data_source or ""), annotation.parent.name, annotation.name):
        m = _SUBSET_LENGTH.search(name)
        if m:
            scale = 60.0 if m.group(3) == "m" else 1.0
            return (int(m.group(1)) + int(m.group(2))) / 2 * scale
    return None


def _role(turn: Any) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower() if isinstance(turn, dict) else ""


class ClipCache:
    """Decoded clips on disk, bounded in size; off unless a folder is given.

    Nothing stays in memory: a clip is read back (or decoded) for every use, so memory does not
    grow with the number of distinct videos. Writing stops once the folder would pass `max_bytes`
    (each of `shares` writers, the loader's workers, gets an equal part of what is left), so a
    dataset larger than the cache fills it once and then decodes the rest every time. The key
    covers the video's path, size and modification time and the sampling config, so an edited
    video or a changed sampling decodes again.
    """

    def __init__(self, sampling, cache_dir: str | Path | None = None, *, max_bytes: int = 10 * 2**30,
                 shares: int = 1, threads: int = 0):
        self.sampling = sampling
        self.threads = threads  # FFmpeg threads a decode (`hardware.decode_threads`; 0: FFmpeg's choice)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.decoded = 0  # decodes done through this cache
        self._budget = 0
        if self.cache_dir is not None:
            used = sum(f.stat().st_size for f in self.cache_dir.glob("*.pkl")) if self.cache_dir.is_dir() else 0
            self._budget = max(0, max_bytes - used) // max(1, shares)

    def get(self, path: str | Path):
        path = Path(path)
        disk = self._disk_path(path)
        if disk is not None and disk.is_file():
            with open(disk, "rb") as f:
                return pickle.load(f)
        from clapper_core.video import load_clip

        clip = load_clip(path, self.sampling, threads=self.threads)
        self.decoded += 1
        if disk is not None:
            blob = pickle.dumps(clip, protocol=pickle.HIGHEST_PROTOCOL)
            if len(blob) <= self._budget:
                self._budget -= len(blob)
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(blob)
                os.replace(tmp, disk)
        return clip

    def _disk_path(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{self.sampling!r}"
        return self.cache_dir / (hashlib.sha1(key.encode()).hexdigest() + ".pkl")
