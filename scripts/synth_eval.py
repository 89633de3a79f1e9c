"""Accuracy of a model on a synthetic question file (qa.jsonl), per question family.

Each video is encoded once (`VideoSession`) and all its questions are asked greedily; an answer
is right when it equals the expected one after `normalize_answer`. With `choose`, a question that names
its options (which event came first) is also answered by choosing: the option the model finds likelier
(`VideoSession.option_logprobs`), which tells knowing the answer from writing it. `paired_difference` says how
much of the gap between two models scored on the same file the held-out videos alone could make;
`mean_over_runs` averages several trainings of one recipe, which differ by more.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from clapper_core.synthetic.questions import (
    FAMILIES,
    ONE_FRAME_FAMILIES,
    TIME_FAMILIES,
    normalize_answer,
    order_events,
    order_objects,
)


@dataclass
class FamilyScores:
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: list[tuple[str, str, bool]] = field(default_factory=list)  # (video, family, right), in file order
    chosen: dict[int, bool] = field(default_factory=dict)  # outcome index: the likelier option was right

    def add(self, video: str, family: str, right: bool) -> None:
        self.total[family] += 1
        self.correct[family] += right
        self.outcomes.append((video, family, right))

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
                    limit: int | None = None, choose: bool = False) -> FamilyScores:
    """Ask every question of `qa_file` (the first `limit` videos) and count exact answers per family; with
    `choose`, also whether the likelier of an order question's two options is the right one (`chosen`)."""
    from clapper_core.generation import GenerationConfig, VideoSession
    from clapper_core.video import SamplingConfig, load_clip

    root = Path(video_root) if video_root is not None else Path(qa_file).parent
    sampling = sampling or SamplingConfig(segment_size=loaded.model.config.segment_size)
    scores = FamilyScores()
    gen = GenerationConfig(max_new_tokens=12)
    for n, (video, rows) in enumerate(_questions_by_video(qa_file).items()):
        if limit is not None and n >= limit:
            break
        session = VideoSession(loaded, load_clip(root / video, sampling))
        for row in rows:
            answer = session.ask(row["question"], gen)
            scores.add(video, row["family"], normalize_answer(answer) == normalize_answer(row["answer"]))
            if choose and (options := order_events(row["question"])) is not None:
                logprobs = session.option_logprobs(row["question"], list(options))
                likelier = options[logprobs.index(max(logprobs))]
                scores.chosen[len(scores.outcomes) - 1] = normalize_answer(likelier) == normalize_answer(row["answer"])
    return scores


def save_scores(scores: FamilyScores, path: Path, key: dict) -> None:
    """Write each question's outcome (and choice, where one was made) to `path` (JSON), with `key`: what they
    were scored from."""
    path.write_text(json.dumps({"key": key, "outcomes": scores.outcomes, "chosen": sorted(scores.chosen.items())}))


def load_scores(path: Path, key: dict) -> FamilyScores | None:
    """The scores `save_scores` wrote to `path` under the same `key`; None when there are none, or they were
    scored from something else (another model file, another question file)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    scores = FamilyScores()
    for video, family, right in saved["outcomes"]:
        scores.add(video, family, bool(right))
    scores.chosen = {int(i): bool(right) for i, right in saved.get("chosen", [])}
    return scores


def _questions_by_video(qa_file: Path) -> dict[str, list[dict]]:
    """qa.jsonl's rows grouped by video, videos in the order they first appear: the order questions are asked in."""
    by_video: dict[str, list[dict]] = defaultdict(list)
    for line in Path(qa_file).read_text().splitlines():
        row = json.loads(line)
        by_video[row["video"]].append(row)
    return by_video


def order_by_objects(scores: FamilyScores, qa_file: Path, *, chosen: bool = False) -> dict[int, tuple[int, int]]:
    """The order family split by how many objects its two events happen to (`order_objects`): {1 or 2: (right,
    questions)}, the free answers', or with `chosen` the likelier options' (questions without a choice left out).
    `scores` must come from `score_synthetic` on `qa_file`."""
    rows = [row for rows in _questions_by_video(qa_file).values() for row in rows][: len(scores.outcomes)]
    if [(r["video"], r["family"]) for r in rows] != [o[:2] for o in scores.outcomes]:
        raise ValueError(f"these scores were not made on {qa_file}; score the model on it first")
    split: dict[int, list[int]] = {}
    for i, (row, (_, family, right)) in enumerate(zip(rows, scores.outcomes)):
        if chosen:
            if i not in scores.chosen:
                continue
            right = scores.chosen[i]
        if family == "order" and (objects := order_objects(row["question"])) is not None:
            counts = split.setdefault(objects, [0, 0])
            counts[0] += right
            counts[1] += 1
    return {k: (c[0], c[1]) for k, c in sorted(split.items())}


def paired_difference(a: FamilyScores, b: FamilyScores, families: tuple[str, ...], *, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """`b` minus `a` on the mean of `families`' accuracies (as `FamilyScores.group`), with the 2.5th and 97.5th
    percentiles of that difference over `resamples` draws of the held-out videos with replacement.

    Both models must have been scored on the same questions. The interval is the held-out set's share of the
    noise only: two trainings of one recipe differ by more.
    """
    if [o[:2] for o in a.outcomes] != [o[:2] for o in b.outcomes]:
        raise ValueError("the two models were not scored on the same questions; score both on one qa.jsonl")
    index = {f: i for i, f in enumerate(families)}
    per_video: dict[str, list[list[int]]] = {}  # video -> per family [questions, a right, b right]
    for (video, family, ra), (_, _, rb) in zip(a.outcomes, b.outcomes):
        if family in index:
            counts = per_video.setdefault(video, [[0, 0, 0] for _ in families])[index[family]]
            counts[0] += 1
            counts[1] += ra
            counts[2] += rb
    videos = list(per_video.values())
    if not videos:
        raise ValueError(f"no questions of {', '.join(families)} to compare")

    def gap(sample: list[list[list[int]]]) -> float:
        sums = [[sum(v[i][k] for v in sample) for k in range(3)] for i in range(len(families))]
        gaps = [(right_b - right_a) / n for n, right_a, right_b in sums if n]
        return sum(gaps) / len(gaps)

    rng = random.Random(seed)
    draws = sorted(gap(rng.choices(videos, k=len(videos))) for _ in range(resamples))
    return gap(videos), draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


def mean_over_runs(runs: list[FamilyScores]) -> dict[str, float]:
    """Each family's accuracy, and the one-frame and time-only means, averaged over several trainings of one
    recipe (each run weighs the same), as `FamilyScores.as_dict` gives them for one."""
    if not runs:
        raise ValueError("no runs to average")
    each = [r.as_dict() for r in runs]
    keys = [k for k in each[0] if all(k in d for d in each)]
    return {k: sum(d[k] for d in each) / len(each) for k in keys}
