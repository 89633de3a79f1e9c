"""Writing the synthetic world to disk: H.264 videos plus training and evaluation files.

`generate_dataset(out_dir, num_videos=..., seed=...)` writes

    out_dir/videos/<prefix>00000.mp4 ...
    out_dir/train.jsonl   LLaVA conversation records, one per question (or per video, multi_turn=True);
                          a `multiple_choice` share of them lettered, as `clapper eval` asks; with
                          all_orders=True every order question a video allows (each pair of events,
                          both ways) instead of one; all_changes=True likewise "What happened to the
                          X?" about every object it may ask of; with end_colours=True also "What colour is the X
                          at the end?" about every corner object visible at the end; with
                          caption_prompts=True each caption asked with one of CAPTION_PROMPTS
    out_dir/qa.jsonl      one line per question: id, video, family, question, answer (for scoring); in the
                          long world (`WorldConfig.segments`) also the video's segments and seconds

Everything is a pure function of (seed, video index, WorldConfig): video i is the same whether
100 or 10,000 are generated.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np

from clapper_core.synthetic.questions import (
    CAPTION_PROMPT,
    CAPTION_PROMPTS,
    QA,
    all_change_questions,
    all_order_questions,
    caption_for,
    end_colour_questions,
    options_for,
    question_id,
    questions_for,
)
from clapper_core.synthetic.world import Scene, WorldConfig, render_frames, sample_scene


@dataclass(frozen=True)
class SyntheticVideo:
    id: str
    path: Path  # absolute path of the written video
    scene: Scene
    qas: tuple[QA, ...]  # questions of every answerable family
    caption: str


@dataclass(frozen=True)
class DatasetSummary:
    out_dir: Path
    num_videos: int
    num_questions: int
    train_file: Path
    qa_file: Path
    family_counts: dict[str, int]


def write_video(frames: np.ndarray, path: Path, *, fps: int, crf: int = 12) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 in an mp4 (near-lossless by default)."""
    assert frames.ndim == 4 and frames.shape[-1] == 3, frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.codec_context.thread_count = 1  # identical bytes from run to run
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_video(
    out_dir: Path, index: int, *, seed: int, config: WorldConfig = WorldConfig(), prefix: str = "synth"
) -> SyntheticVideo:
    """Draw scene `index` of world `seed`, write its video under out_dir/videos, return its questions."""
    rng = random.Random(f"clapper-synthetic:{seed}:{index}")
    scene = sample_scene(rng, config)
    vid = f"{prefix}{index:05d}"
    path = Path(out_dir) / "videos" / f"{vid}.mp4"
    write_video(render_frames(scene), path, fps=config.fps)
    return SyntheticVideo(
        id=vid, path=path.resolve(), scene=scene, qas=tuple(questions_for(scene, rng)), caption=caption_for(scene)
    )


def to_llava_records(video: SyntheticVideo, rel_path: str, *, rng: random.Random, captions: bool,
                     multi_turn: bool, multiple_choice: float = 0.0, caption_prompts: bool = False) -> list[dict]:
    """LLaVA conversation records of a video: one per question (default), or one with every question.

    One question per record keeps answers independent: in a multi-turn record an earlier answer (a
    caption, say) often gives a later one away, and a model learns to copy instead of to look.
    A `multiple_choice` share of the questions is asked as `clapper eval` asks them (lettered
    options, the same as the benchmark of this world would offer, answered with a letter).
    """
    from clapper_core.eval.answers import format_prompt, letter

    turns = []
    for k, qa in enumerate(video.qas, start=1):
        if multiple_choice > 0 and rng.random() < multiple_choice:
            options, right = options_for(question_id(video.id, k), qa.family, qa.question, qa.answer)
            turns.append((format_prompt(qa.question, options), letter(right)))
        else:
            turns.append((qa.question, qa.answer))
    if captions:
        turns.append((rng.choice(CAPTION_PROMPTS) if caption_prompts else CAPTION_PROMPT, video.caption))
    rng.shuffle(turns)
    groups = [turns] if multi_turn else [[t] for t in turns]
    records = []
    for group in groups:
        conversations: list[dict[str, str]] = []
        for i, (q, a) in enumerate(group):
            conversations.append({"from": "human", "value": ("<video>\n" + q) if i == 0 else q})
            conversations.append({"from": "gpt", "value": a})
        records.append({"id": video.id, "video": rel_path, "conversations": conversations})
    return records


def generate_dataset(
    out_dir: str | Path,
    *,
    num_videos: int,
    seed: int = 0,
    config: WorldConfig = WorldConfig(),
    prefix: str = "synth",
    captions: bool = True,
    multi_turn: bool = False,
    multiple_choice: float = 0.0,
    all_orders: bool = False,
    all_changes: bool = False,
    end_colours: bool = False,
    caption_prompts: bool = False,
    on_video=None,
) -> DatasetSummary:
    """Write `num_videos` videos with their train.jsonl and qa.jsonl; see the module docstring."""
    if num_videos < 1:
        raise ValueError(f"num_videos={num_videos} must be at least 1")
    if not 0.0 <= multiple_choice <= 1.0:
        raise ValueError(f"multiple_choice={multiple_choice} is a share of the questions, between 0 and 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    n_q = 0
    order_rng = random.Random(f"clapper-synthetic-order:{seed}")
    with open(out / "train.jsonl", "w") as train_f, open(out / "qa.jsonl", "w") as qa_f:
        for i in range(num_videos):
            video = make_video(out, i, seed=seed, config=config, prefix=prefix)
            # the other order and change questions after the video's own questions: their ids are unchanged
            for more, wanted in ((all_order_questions, all_orders), (all_change_questions, all_changes)):
                if wanted:
                    asked = {qa.question for qa in video.qas}
                    video = replace(video, qas=video.qas + tuple(qa for qa in more(video.scene)
                                                                 if qa.question not in asked))
            if end_colours:  # after the others too, for the same reason
                video = replace(video, qas=video.qas + tuple(end_colour_questions(video.scene)))
            rel = f"videos/{video.path.name}"
            for rec in to_llava_records(video, rel, rng=order_rng, captions=captions, multi_turn=multi_turn,
                                        multiple_choice=multiple_choice, caption_prompts=caption_prompts):
                train_f.write(json.dumps(rec) + "\n")
            for qa in video.qas:
                row = {"id": video.id, "video": rel, "family": qa.family, "question": qa.question, "answer": qa.answer}
                if video.scene.segment_seconds is not None:
                    row.update(segments=video.scene.num_segments, seconds=video.scene.config.seconds)
                qa_f.write(json.dumps(row) + "\n")
                counts[qa.family] = counts.get(qa.family, 0) + 1
                n_q += 1
            if on_video is not None:
                on_video(i + 1, num_videos)
    return DatasetSummary(
        out_dir=out.resolve(),
        num_videos=num_videos,
        num_questions=n_q,
        train_file=(out / "train.jsonl").resolve(),
        qa_file=(out / "qa.jsonl").resolve(),
        family_counts=counts,
    )
