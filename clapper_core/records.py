"""The one result record and its JSON serializer: the documented output schema.

Every answered (video, question) pair becomes one `Record`. `Record.to_json()` is the only
serializer used by `clapper ask --json`, `clapper caption --json`, caption `--output` files
and evaluation's per-question files, so every consumer reads one shape:

    {"video": "clips/a.mp4", "question": "what happens?", "answer": "A red ball rolls left.",
     "task": "ask", "model": "clapper-demo", "device": "cpu", "precision": "fp32",
     "frames": 8, "timestamps": [0.0, 1.0, ...], "segments": [[0, 4, 0.0, 3.0], ...],
     "visual_tokens": 490, "duration_s": 8.0,
     "timings": {"decode_s": 0.05, "encode_s": 0.4, "prefill_s": 0.1, "generate_s": 0.9},
     "new_tokens": 12, "tokens_per_s": 13.3, "error": null, "error_type": null,
     "schema": 1, "extra": {}}

`SCHEMA` documents each field (README's "JSON output" table is checked against it) and
`validate(obj)` checks a parsed object against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class Timings:
    """Seconds spent in each stage; `None` when a stage did not run (the video failed to decode, say)."""

    decode_s: float | None = None
    encode_s: float | None = None
    prefill_s: float | None = None
    generate_s: float | None = None


@dataclass
class Record:
    video: str
    question: str
    answer: str | None = None
    task: str = "ask"  # "ask" | "caption" | "eval"
    model: str | None = None
    device: str | None = None
    precision: str | None = None
    frames: int | None = None
    timestamps: list[float] = field(default_factory=list)
    segments: list[list[float]] = field(default_factory=list)  # [start_frame, stop_frame, start_s, end_s]
    visual_tokens: int | None = None
    duration_s: float | None = None
    timings: Timings = field(default_factory=Timings)
    new_tokens: int | None = None
    tokens_per_s: float | None = None
    error: str | None = None
    error_type: str | None = None
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timestamps"] = [round(t, 3) for t in self.timestamps]
        data["segments"] = [[int(a), int(b), round(s, 3), round(e, 3)] for a, b, s, e in self.segments]
        data["timings"] = {k: None if v is None else round(v, 4) for k, v in data["timings"].items()}
        for key in ("duration_s", "tokens_per_s"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data

    def to_json(self) -> str:
        """One line of JSON (no newline inside), the format of every JSON output."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(", ", ": "))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        known = {k: v for k, v in data.items() if k in SCHEMA}
        known["timings"] = Timings(**(data.get("timings") or {}))
        return cls(**known)

    @classmethod
    def from_json(cls, line: str) -> "Record":
        return cls.from_dict(json.loads(line))

    @classmethod
    def failure(cls, video: str, question: str, exc: BaseException, **context: Any) -> "Record":
        """The record of a video that could not be answered: `error` holds the one-line message."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        return cls(video=video, question=question, error=message, error_type=type(exc).__name__, **context)


def precision_name(hardware: Any) -> str:
    """How the weights are held, as records write it: "bf16", "fp16", "fp32" or "4bit"."""
    if getattr(hardware, "quant", None) == "4bit":
        return "4bit"
    name = str(getattr(hardware, "dtype", "")).replace("torch.", "")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(name, name or "unknown")


def clip_fields(clip: Any) -> dict[str, Any]:
    """What a record says about a decoded clip: frames, their times, the segments and the video's length."""
    return {
        "frames": clip.num_frames,
        "timestamps": [float(t) for t in clip.timestamps],
        "segments": [[s.start, s.stop, float(s.start_time), float(s.end_time)] for s in clip.segments],
        "duration_s": float(clip.duration),
    }


# field -> (JSON types allowed, description). The README table is generated from this.
SCHEMA: dict[str, tuple[tuple[str, ...], str]] = {
    "video": (("string",), "path of the video, as given or as found under a directory"),
    "question": (("string",), "the question asked (`ask`) or the prompt (`caption`)"),
    "answer": (("string", "null"), "the generated answer; null when the video failed"),
    "task": (("string",), '"ask", "caption" or "eval"'),
    "model": (("string", "null"), "the model that answered: a directory, Hugging Face id or clapper-demo"),
    "device": (("string", "null"), 'where it ran: "cpu", "cuda", "cuda:1"...'),
    "precision": (("string", "null"), 'weights: "bf16", "fp16", "fp32" or "4bit"'),
    "frames": (("integer", "null"), "frames sampled from the video"),
    "timestamps": (("array",), "time of each sampled frame, in seconds"),
    "segments": (("array",), "slow-fast segments as [start_frame, stop_frame, start_s, end_s]"),
    "visual_tokens": (("integer", "null"), "visual tokens the video cost in the prompt"),
    "duration_s": (("number", "null"), "length of the video in seconds"),
    "timings": (("object",), "seconds in each stage: decode_s, encode_s, prefill_s, generate_s (null if not run)"),
    "new_tokens": (("integer", "null"), "tokens generated"),
    "tokens_per_s": (("number", "null"), "generation speed: new_tokens / generate_s"),
    "error": (("string", "null"), "one-line error message when the video failed, else null"),
    "error_type": (("string", "null"), 'the error\'s class, e.g. "CorruptVideoError"'),
    "schema": (("integer",), f"version of this schema (currently {SCHEMA_VERSION})"),
    "extra": (("object",), "task-specific additions (eval: options, reference, correct); {} otherwise"),
}
TIMING_KEYS = ("decode_s", "encode_s", "prefill_s", "generate_s")

_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def validate(obj: Any) -> list[str]:
    """Problems with a parsed JSON record (an empty list when it matches `SCHEMA`)."""
    if not isinstance(obj, dict):
        return ["a record must be a JSON object"]
    problems = [f"missing field {k!r}" for k in SCHEMA if k not in obj]
    problems += [f"unknown field {k!r}" for k in obj if k not in SCHEMA]
    for key, (types, _) in SCHEMA.items():
        if key in obj and not any(_JSON_TYPES[t](obj[key]) for t in types):
            problems.append(f"{key!r} should be {' or '.join(types)}, got {type(obj[key]).__name__}")
    timings = obj.get("timings")
    if isinstance(timings, dict):
        if set(timings) != set(TIMING_KEYS):
            problems.append(f"'timings' should have exactly {', '.join(TIMING_KEYS)}")
        problems += [
            f"timings[{k!r}] should be a number or null" for k, v in timings.items() if not _number_or_null(v)
        ]
    if isinstance(obj.get("timestamps"), list) and not all(_JSON_TYPES["number"](t) for t in obj["timestamps"]):
        problems.append("'timestamps' should hold numbers")
    if isinstance(obj.get("segments"), list) and not all(
        isinstance(s, list) and len(s) == 4 and all(_JSON_TYPES["number"](x) for x in s) for s in obj["segments"]
    ):
        problems.append("'segments' should hold [start_frame, stop_frame, start_s, end_s] lists")
    if obj.get("error") is None and obj.get("answer") is None:
        problems.append("a record has either an answer or an error")
    return problems


def _number_or_null(value: Any) -> bool:
    return value is None or _JSON_TYPES["number"](value)
