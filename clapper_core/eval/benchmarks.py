"""Multiple-choice video benchmarks: one `Question` list from any supported annotation layout.

Layouts (picked by `--format`, or recognised from the file):

- **videomme**: Video-MME's `videomme/test-00000-of-00001.parquet` (or the same rows as JSON):
  one row per question with `videoID`, `question_id`, `task_type`, `duration`, `domain`,
  `question`, `options` (["A. ...", ...]) and `answer` (a letter). Videos are `{videoID}.mp4`.
  The nested JSON form (one object per video with a `questions` list) is read too.
- **mlvu**: MLVU's per-task files `json/1_plotQA.json` ... `7_topic_reasoning.json`: lists of
  {video, duration, question, candidates, answer (the text), question_type}; pass one file or
  the folder. Videos are `video/<task file stem>/<video>` (e.g. `video/1_plotQA/movie101_66.mp4`).
  The open-ended tasks (sub-scene captioning, summary) have no candidates and are skipped.
- **tempcompass**: TempCompass's `questions/multi-choice.json`:
  {video_id: {dimension: [{question: "...\\nA. ...\\nB. ...", answer: "B. ..."}]}}.
  Videos are `{video_id}.mp4`; the dimension is the task type.
- **generic**: JSON list, JSONL or Parquet rows with `video`, `question`, `options` (a list,
  letter-prefixed or not, or {"A": ...} ) and `answer` (a letter, the option's text or its
  0-based index); optional `id`, `task` (or `task_type`).

Videos are looked up under `--video-root` (default: the annotation file's folder) with the
layout's naming conventions; a video that is not found keeps its question in the list with
`video_path=None`, so it is counted (as wrong) rather than silently dropped.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clapper_core.errors import ConfigError, DataError
from clapper_core.eval.answers import LETTERS, strip_letter

FORMATS = ("auto", "generic", "videomme", "mlvu", "tempcompass")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


@dataclass(frozen=True)
class Question:
    """One multiple-choice question about one video."""

    id: str  # unique within the benchmark
    video: str  # the video as the benchmark names it
    question: str  # without its options
    options: tuple[str, ...]  # option texts, without letters
    answer: int  # index of the correct option
    task: str = ""  # task type / dimension ("" when the benchmark has none)
    video_path: Path | None = None  # where the video was found; None when missing
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # duration, domain...

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer]


@dataclass(frozen=True)
class Benchmark:
    name: str
    format: str
    questions: tuple[Question, ...]

    @property
    def missing_videos(self) -> list[str]:
        """Videos the benchmark names that were not found, each once, in order."""
        return list(dict.fromkeys(q.video for q in self.questions if q.video_path is None))

    def select(self, *, limit: int | None = None, shuffle: bool = False, seed: int = 0) -> Benchmark:
        """A quick subset: shuffled by video (a video's questions stay together), then cut to `limit`."""
        questions = list(self.questions)
        if shuffle:
            videos = list(dict.fromkeys(q.video for q in questions))
            random.Random(seed).shuffle(videos)
            rank = {v: i for i, v in enumerate(videos)}
            questions.sort(key=lambda q: rank[q.video])  # stable: order within a video kept
        if limit is not None:
            questions = questions[:limit]
        return replace(self, questions=tuple(questions))


# --- reading files ---------------------------------------------------------------------------


def _read_rows(path: Path) -> Any:
    """The parsed content of a JSON, JSONL or Parquet file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"benchmark file {path} is not valid JSON ({exc}): check the file.") from None
    except OSError as exc:
        raise DataError(f"cannot read benchmark file {path}: {exc.strerror or exc}.") from None
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"benchmark file {path} is not a readable Parquet file ({exc}).") from None
        raise


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl", ".parquet"))
    if not files and (path / "json").is_dir():  # the MLVU folder itself
        return _annotation_files(path / "json")
    if not files:
        raise DataError(f"no .json, .jsonl or .parquet annotation file in {path}: point at the benchmark file.")
    return files


def detect_format(path: Path, data: Any) -> str:
    """Which layout a parsed annotation file follows."""
    if isinstance(data, dict):
        first = next(iter(data.values()), None)
        if isinstance(first, dict) and all(isinstance(v, list) for v in first.values()):
            return "tempcompass"
        raise DataError(f"{path} holds a JSON object, not a list of questions: see `clapper eval --help` for layouts.")
    if not isinstance(data, list) or not data:
        raise DataError(f"{path} holds no questions.")
    row = data[0]
    if not isinstance(row, dict):
        raise DataError(f"{path} is not a list of JSON objects: see `clapper eval --help` for layouts.")
    if "videoID" in row or ("questions" in row and "video_id" in row):
        return "videomme"
    if "candidates" in row or "question_type" in row:  # MLVU's open-ended tasks have no candidates
        return "mlvu"
    return "generic"


# --- resolving videos ------------------------------------------------------------------------


def _find_video(root: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        candidate = root / name
        if candidate.is_file():
            return candidate
        if not Path(name).suffix:
            for suffix in VIDEO_SUFFIXES:
                if candidate.with_name(candidate.name + suffix).is_file():
                    return candidate.with_name(candidate.name + suffix)
    return None


# --- the layouts -----------------------------------------------------------------------------


def _parse_answer(raw: Any, options: Sequence[str], where: str) -> int:
    """A letter, "B. text", the option's text, or a 0-based index -> the option's index."""
    if isinstance(raw, bool):
        raise DataError(f"{where}: answer {raw!r} is not a letter, an option or an index.")
    if isinstance(raw, int):
        if 0 <= raw < len(options):
            return raw
        raise DataError(f"{where}: answer index {raw} is outside the {len(options)} options.")
    text = str(raw).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(options)]:
        return LETTERS.index(text.upper())
    stripped = strip_letter(text)
    if stripped != text and text.lstrip("([")[:1].upper() in LETTERS[: len(options)]:
        return LETTERS.index(text.lstrip("([")[:1].upper())
    matches = [i for i, o in enumerate(options) if o.strip().lower() == text.lower()]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"{where}: answer {text!r} is neither a letter nor one of the options; fix the annotation.")


def _parse_options(raw: Any, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [line for line in raw.splitlines() if line.strip()]
    if isinstance(raw, dict):
        raw = [raw[k] for k in sorted(raw)]
    if not isinstance(raw, (list, tuple)) or len(raw) < 2:
        raise DataError(f"{where}: needs at least 2 options, got {raw!r}.")
    if len(raw) > len(LETTERS):
        raise DataError(f"{where}: {len(raw)} options are more than the {len(LETTERS)} letters A-Z.")
    return tuple(strip_letter(str(o), i) for i, o in enumerate(raw))


def _require(row: dict[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; see `clapper eval --help` for layouts.")


def _videomme(rows: list[dict[str, Any]], path: Path, root: Path) -> list[Question]:
    flat: list[dict[str, Any]] = []
    for row in rows:
        if "questions" in row:  # nested: one object per video
            for q in row["questions"]:
                flat.append({**{k: v for k, v in row.items() if k != "questions"}, **q})
        else:
            flat.append(row)
    out = []
    for n, row in enumerate(flat):
        where = f"{path.name} row {n + 1}"
        _require(row, ("videoID", "question", "options", "answer"), where)
        options = _parse_options(row["options"], where)
        vid = str(row["videoID"])
        found = _find_video(root, [f"{vid}.mp4", f"data/{vid}.mp4", f"video/{vid}.mp4", f"videos/{vid}.mp4", vid])
        meta = {k: row[k] for k in ("duration", "domain", "sub_category", "video_id") if k in row}
        out.append(Question(
            id=str(row.get("question_id") or f"{vid}-{n}"), video=f"{vid}.mp4", question=str(row["question"]),
            options=options, answer=_parse_answer(row["answer"], options, where),
            task=str(row.get("task_type") or ""), video_path=found, meta=meta,
        ))
    return out


def _mlvu(rows: list[dict[str, Any]], path: Path, root: Path) -> list[Question]:
    stem = path.stem  # "1_plotQA": its videos are in video/1_plotQA/
    out = []
    for n, row in enumerate(rows):
        where = f"{path.name} row {n + 1}"
        if "candidates" not in row:
            continue  # open-ended tasks (sub-scene captioning, summary)
        _require(row, ("video", "question", "candidates", "answer"), where)
        options = _parse_options(row["candidates"], where)
        video = str(row["video"])
        found = _find_video(root, [f"video/{stem}/{video}", f"{stem}/{video}", video, f"video/{video}"])
        task = str(row.get("question_type") or stem.split("_", 1)[-1])
        meta = {k: row[k] for k in ("duration",) if k in row}
        out.append(Question(
            id=f"{stem}/{n}", video=video, question=str(row["question"]), options=options,
            answer=_parse_answer(row["answer"], options, where), task=task, video_path=found, meta=meta,
        ))
    return out


def _tempcompass(data: dict[str, Any], path: Path, root: Path) -> list[Question]:
    out = []
    for vid, dims in data.items():
        found = _find_video(root, [f"{vid}.mp4", f"videos/{vid}.mp4", str(vid)])
        for dim, questions in dims.items():
            for n, row in enumerate(questions):
                where = f"{path.name} {vid}/{dim}/{n}"
                _require(row, ("question", "answer"), where)
                lines = [line for line in str(row["question"]).splitlines() if line.strip()]
                first_option = next((i for i, line in enumerate(lines) if strip_letter(line, 0) != line.strip()), None)
                if first_option is None:
                    raise DataError(f"{where}: the question lists no lettered options (\"A. ...\").")
                options = _parse_options(lines[first_option:], where)
                out.append(Question(
                    id=f"{vid}/{dim}/{n}", video=f"{vid}.mp4", question="\n".join(lines[:first_option]),
                    options=options, answer=_parse_answer(row["answer"], options, where), task=str(dim),
                    video_path=found,
                ))
    return out


def _generic(rows: list[dict[str, Any]], path: Path, root: Path) -> list[Question]:
    out = []
    for n, row in enumerate(rows):
        where = f"{path.name} row {n + 1}"
        if "video" not in row and "video_path" in row:
            row = {**row, "video": row["video_path"]}
        if "options" not in row and "candidates" in row:
            row = {**row, "options": row["candidates"]}
        _require(row, ("video", "question", "options", "answer"), where)
        options = _parse_options(row["options"], where)
        video = str(row["video"])
        found = _find_video(root, [video]) if not Path(video).is_absolute() else (
            Path(video) if Path(video).is_file() else None)
        out.append(Question(
            id=str(row.get("id") or row.get("question_id") or n), video=video, question=str(row["question"]),
            options=options, answer=_parse_answer(row["answer"], options, where),
            task=str(row.get("task") or row.get("task_type") or ""), video_path=found,
        ))
    return out


_READERS = {"videomme": _videomme, "mlvu": _mlvu, "tempcompass": _tempcompass, "generic": _generic}


def load_benchmark(
    path: str | Path,
    *,
    video_root: str | Path | None = None,
    format: str = "auto",
) -> Benchmark:
    """Read a benchmark's annotations and find its videos. Raises `DataError` on bad files."""
    path = Path(path).expanduser()
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}.")
    if not path.exists():
        raise DataError(f"benchmark {path} does not exist: pass the annotation file (JSON, JSONL or Parquet).")
    root = Path(video_root).expanduser() if video_root is not None else (path if path.is_dir() else path.parent)
    if video_root is not None and not root.is_dir():
        raise DataError(f"--video-root {root} is not a folder: pass the folder that holds the videos.")
    if path.is_dir() and video_root is None and path.name == "json":
        root = path.parent  # MLVU/json -> MLVU, whose video/ folder sits next to it
    questions: list[Question] = []
    used = format
    for file in _annotation_files(path):
        data = _read_rows(file)
        kind = detect_format(file, data) if format == "auto" else format
        if kind == "tempcompass" and not isinstance(data, dict):
            raise DataError(f"{file} is not TempCompass's multi-choice.json layout (a JSON object by video).")
        if kind != "tempcompass" and not isinstance(data, list):
            raise DataError(f"{file} holds a JSON object where a list of questions is expected for --format {kind}.")
        questions += _READERS[kind](data, file, root)
        used = kind
    if not questions:
        raise DataError(f"{path} holds no multiple-choice questions.")
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for n, i in enumerate(ids) if i in ids[:n])
        raise DataError(f"question id {dup!r} appears twice in {path}: ids must be unique.")
    name = path.parent.name if path.stem.startswith("test-0") else path.stem
    return Benchmark(name=name, format=used, questions=tuple(questions))
