"""Accuracy of a model on a synthetic question file (qa.jsonl), per question family.

Each video is encoded once (`VideoSession`) and all its questions are asked greedily; an answer
is right when it equals the expected one after `normalize_answer`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clapper_core.synthetic.questions import FAMILIES, ONE_FRAME_FAMILIES, TIME_FAMILIES, normalize_answer


@dataclass
class FamilyScores:
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def accuracy(self, family: str) -> float:
        return self.correct[family] / self.total[family] if self.total[family] else float("nan")

    def group(self, families: tuple[str, ...]) -> float:
        """Mean of the families' accuracies (each family weighs the same)."""
        accs = [self.accuracy(f) for f in families if self.total[f]]
        return sum(accs) / len(accs) if accs else float("nan")

    @property
    def one_frame(self) -> float:
        return self.group(ONE_FRAME_FAMILIES)

    @property
    def time_only(self) -> float:
        return self.group(TIME_FAMILIES)

    def as_dict(self) -> dict[str, float]:
        out = {f: self.accuracy(f) for f in FAMILIES if self.total[f]}
        out.update(one_frame=self.one_frame, time_only=self.time_only)
        return out


def score_synthetic(loaded, qa_file: Path, *, video_root: Path | None = None, sampling=None,
                    limit: int | None = None) -> FamilyScores:
    """Ask every question of `qa_file` (the first `limit` videos) and count exact answers per family."""
    from clapper_core.generation import GenerationConfig, VideoSession
    from clapper_core.video import SamplingConfig, load_clip

    root = Path(video_root) if video_root is not None else Path(qa_file).parent
    sampling = sampling or SamplingConfig(segment_size=loaded.model.config.segment_size)
    by_video: dict[str, list[dict]] = defaultdict(list)
    for line in Path(qa_file).read_text().splitlines():
        row = json.loads(line)
        by_video[row["video"]].append(row)
    scores = FamilyScores()
    gen = GenerationConfig(max_new_tokens=12)
    for n, (video, rows) in enumerate(by_video.items()):
        if limit is not None and n >= limit:
            break
        session = VideoSession(loaded, load_clip(root / video, sampling))
        for row in rows:
            answer = session.ask(row["question"], gen)
            scores.total[row["family"]] += 1
            scores.correct[row["family"]] += normalize_answer(answer) == normalize_answer(row["answer"])
    return scores
