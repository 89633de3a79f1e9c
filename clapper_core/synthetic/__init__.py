"""The synthetic temporal video world: short videos of shapes, with questions, answers and captions.

    from clapper_core.synthetic import generate_dataset
    generate_dataset("synth/", num_videos=500, seed=0)

or `python -m clapper_core.synthetic synth/ -n 500 --seed 0` (also `clapper train synth`). The long world, videos
of 1 to 8 four-second segments with when questions: `WorldConfig(segments=(1, 8))`, or `--segments 1 8`
(docs/long_video.md).
See `world.py` for what happens in a video and `questions.py` for the question families.
"""

from __future__ import annotations

from clapper_core.synthetic.questions import (
    CAPTION_PROMPT,
    CAPTION_PROMPTS,
    END_COLOUR,
    FAMILIES,
    LONG_FAMILIES,
    LONG_TIME_FAMILIES,
    ONE_FRAME_FAMILIES,
    QA,
    TIME_FAMILIES,
    TIMELINE_FAMILIES,
    WHEN_TOLERANCE_S,
    answer_right,
    caption_for,
    end_colour_questions,
    normalize_answer,
    questions_for,
    seconds_in,
)
from clapper_core.synthetic.world import COLOURS, DIRECTIONS, SHAPES, Scene, WorldConfig, render_frames, sample_scene
from clapper_core.synthetic.writer import (
    DatasetSummary,
    SyntheticVideo,
    generate_dataset,
    make_video,
    write_video,
)

__all__ = [
    "CAPTION_PROMPT",
    "CAPTION_PROMPTS",
    "COLOURS",
    "END_COLOUR",
    "DIRECTIONS",
    "FAMILIES",
    "LONG_FAMILIES",
    "LONG_TIME_FAMILIES",
    "ONE_FRAME_FAMILIES",
    "QA",
    "SHAPES",
    "TIME_FAMILIES",
    "TIMELINE_FAMILIES",
    "WHEN_TOLERANCE_S",
    "DatasetSummary",
    "Scene",
    "SyntheticVideo",
    "WorldConfig",
    "answer_right",
    "caption_for",
    "end_colour_questions",
    "generate_dataset",
    "make_video",
    "normalize_answer",
    "questions_for",
    "render_frames",
    "sample_scene",
    "seconds_in",
    "write_video",
]
