"""Turn a generated synthetic world (`qa.jsonl` + `videos/`) into a benchmark in Video-MME's layout.

    python -m clapper_core.eval.synthetic_bench synth/ synth-mme/
    clapper eval synth-mme/videomme/test-00000-of-00001.parquet --video-root synth-mme

writes

    synth-mme/videomme/test-00000-of-00001.parquet   one row per question, Video-MME's columns
    synth-mme/data/<videoID>.mp4                      the videos (hard links when possible)

Each open answer becomes 4 lettered options (fewer when the family has fewer answers): the
right one plus distractors from the same family's answer set (colours, shapes, directions,
counts, changes; an order question offers the two events it names). Options and the answer's
position are drawn from a generator seeded by the question id, so the file is the same every
time. The question family is the `task_type`, so `clapper eval` reports accuracy per family.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from clapper_core.errors import DataError
from clapper_core.eval.answers import LETTERS
from clapper_core.synthetic.questions import NUM_OPTIONS, options_for, question_id

__all__ = ["NUM_OPTIONS", "options_for", "synthetic_to_videomme", "main"]
PARQUET_NAME = "test-00000-of-00001.parquet"


def _place_video(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def synthetic_to_videomme(synth_dir: str | Path, out_dir: str | Path, *, num_options: int = NUM_OPTIONS) -> Path:
    """Write the Video-MME-layout benchmark of a synthetic world; returns the Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    synth, out = Path(synth_dir), Path(out_dir)
    qa_file = synth / "qa.jsonl"
    if not qa_file.is_file():
        raise DataError(f"{qa_file} not found: generate a world first (python -m clapper_core.synthetic {synth}).")
    rows, per_video = [], {}
    for n, line in enumerate(qa_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        qa = json.loads(line)
        vid = qa["id"]
        k = per_video[vid] = per_video.get(vid, 0) + 1
        qid = question_id(vid, k)
        try:
            options, answer = options_for(qid, qa["family"], qa["question"], qa["answer"], num_options=num_options)
        except ValueError as e:
            raise DataError(f"{qa_file} line {n}: {e}") from None
        src = synth / qa["video"]
        if not src.is_file():
            raise DataError(f"{qa_file} line {n}: video {src} is missing; regenerate the world.")
        _place_video(src, out / "data" / f"{vid}.mp4")
        rows.append({
            "video_id": vid, "duration": "short", "domain": "Synthetic",
            "sub_category": qa["family"], "url": "", "videoID": vid, "question_id": qid,
            "task_type": qa["family"], "question": qa["question"],
            "options": [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)], "answer": LETTERS[answer],
        })
    if not rows:
        raise DataError(f"{qa_file} holds no questions.")
    path = out / "videomme" / PARQUET_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m clapper_core.eval.synthetic_bench",
        description="Write a synthetic world's questions as a multiple-choice benchmark in Video-MME's layout.")
    parser.add_argument("synth_dir", help="folder written by `python -m clapper_core.synthetic` (qa.jsonl, videos/)")
    parser.add_argument("out_dir", help="where to write videomme/*.parquet and data/*.mp4")
    parser.add_argument("--options", type=int, default=NUM_OPTIONS, help="options per question (default 4)")
    args = parser.parse_args(argv)
    if not 2 <= args.options <= len(LETTERS):
        parser.error(f"--options must be between 2 and {len(LETTERS)}")
    try:
        path = synthetic_to_videomme(args.synth_dir, args.out_dir, num_options=args.options)
    except DataError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
