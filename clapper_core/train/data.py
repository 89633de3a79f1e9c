"""Training data in the LLaVA conversation format, read defensively.

A record is a JSON object with a video path (relative to `--video-root`) and alternating
`human` / `gpt` turns; `<video>` in a human turn marks where the video goes:

    {"id": "a1", "video": "clips/a1.mp4",
     "conversations": [{"from": "human", "value": "<video>\\nWhat colour is the square?"},
                       {"from": "gpt", "value": "red"}]}

Files are JSONL (one record a line) or JSON (a list of records). A bad record (unparsable,
missing video, no `<video>` tag, empty answer, turns out of order) is reported with its line
number (its position in a JSON list) and skipped; training never dies on one bad sample.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapper_core.errors import DataError

VIDEO_TAG = "<video>"
_HUMAN = {"human", "user"}
_GPT = {"gpt", "assistant"}


@dataclass(frozen=True)
class TrainRecord:
    id: str
    video: Path  # resolved path
    turns: tuple[tuple[str, str], ...]  # (question, answer) pairs; the video tag removed
    line: int  # where it came from, for messages


@dataclass(frozen=True)
class SkippedRecord:
    line: int
    reason: str


@dataclass
class TrainData:
    path: Path
    records: list[TrainRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)

    def describe_skipped(self, limit: int = 10) -> list[str]:
        """One line per skipped record (the first `limit`), then a count of the rest."""
        lines = [f"{self.path.name}:{s.line}: skipped: {s.reason}" for s in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"... and {len(self.skipped) - limit} more skipped records")
        return lines


class BadRecord(ValueError):
    """Raised inside the reader for one record; caught, counted and reported."""


def read_train_data(path: str | Path, *, video_root: str | Path | None = None) -> TrainData:
    """Parse a JSON or JSONL training file; bad records land in `.skipped` with their line numbers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training file {path} does not exist: pass a JSON or JSONL file in the LLaVA format")
    root = Path(video_root) if video_root is not None else path.parent
    if not root.is_dir():
        raise DataError(f"video root {root} is not a directory: pass --video-root DIR holding the videos")
    data = TrainData(path=path)
    for line, raw in _raw_records(path):
        try:
            data.records.append(_parse(raw, line, root))
        except BadRecord as exc:
            data.skipped.append(SkippedRecord(line, str(exc)))
    if not data.records:
        first = f" (first problem, line {data.skipped[0].line}: {data.skipped[0].reason})" if data.skipped else ""
        raise DataError(f"{path} holds no usable training record{first}")
    return data


def _raw_records(path: Path):
    """Yield (line number or position, parsed object or the exception that parsing raised)."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}): fix it or use JSONL") from exc
        for i, item in enumerate(items, start=1):
            yield i, item
        return
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as exc:
            yield i, BadRecord(f"not valid JSON ({exc.msg})")


def _parse(raw: Any, line: int, root: Path) -> TrainRecord:
    if isinstance(raw, BadRecord):
        raise raw
    if not isinstance(raw, dict):
        raise BadRecord("not a JSON object")
    video = raw.get("video") or raw.get("video_path")
    if not isinstance(video, str) or not video:
        raise BadRecord('no "video" path')
    vpath = Path(video) if os.path.isabs(video) else root / video
    if not vpath.is_file():
        raise BadRecord(f"video {vpath} not found")
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
        tagged = tagged or VIDEO_TAG in question
        question = question.replace(VIDEO_TAG, "").strip()
        if not answer.strip():
            raise BadRecord(f"empty answer in turn {i + 2}")
        if not question:
            raise BadRecord(f"empty question in turn {i + 1}")
        turns.append((question, answer.strip()))
    if not tagged:
        raise BadRecord(f"no {VIDEO_TAG} tag in any human turn")
    return TrainRecord(id=str(raw.get("id", line)), video=vpath.resolve(), turns=tuple(turns), line=line)


def _role(turn: Any) -> str:
    return str(turn.get("from", turn.get("role", ""))).lower() if isinstance(turn, dict) else ""


class ClipCache:
    """Decoded clips, kept in memory and (optionally) on disk, so training is not decode-bound.

    The disk key covers the video's path, size and modification time and the sampling config,
    so an edited video or a changed sampling decodes again.
    """

    def __init__(self, sampling, cache_dir: str | Path | None = None):
        self.sampling = sampling
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: dict[Path, Any] = {}
        self.decoded = 0  # decodes done by this cache (misses on both levels)

    def get(self, path: Path):
        clip = self._memory.get(path)
        if clip is not None:
            return clip
        disk = self._disk_path(path)
        if disk is not None and disk.is_file():
            with open(disk, "rb") as f:
                clip = pickle.load(f)
        else:
            from clapper_core.video import load_clip

            clip = load_clip(path, self.sampling)
            self.decoded += 1
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".tmp{os.getpid()}")
                with open(tmp, "wb") as f:
                    pickle.dump(clip, f, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, disk)
        self._memory[path] = clip
        return clip

    def _disk_path(self, path: Path) -> Path | None:
        if self.cache_dir is None:
            return None
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{self.sampling!r}"
        return self.cache_dir / (hashlib.sha1(key.encode()).hexdigest() + ".pkl")
