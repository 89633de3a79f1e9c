"""Does a model understand videos of many segments, and say when things happen? Accuracy per question family by
segment count, on held-out videos of the long synthetic world (`WorldConfig(segments=...)`, docs/long_video.md).

    python scripts/long_video.py                                   # the demo model, 40 videos of each 1 to 8 segments
    python scripts/long_video.py --videos 2 --segments 1 2 4 8     # a smoke run
    python scripts/long_video.py --model runs/long/stage2 --baseline runs/long_keyframe/stage2   # a retrained model
                                                                   # beside a keyframe-only one trained the same way

Each video is encoded once (`VideoSession`) and its questions asked greedily, at most --max-new-tokens tokens an
answer. A `when` answer is right within 4 s (one segment) of the truth (`answer_right`), any other when it is the
expected one after `normalize_answer`. An answer that reached --max-new-tokens without the end-of-turn token is a
run-on (`VideoSession.last_stats.stopped` is False): counted, and wrong whatever it says. Under the table the
figures the long world is built to reach, beside their targets. Every answer goes to --work/answers-<model>.jsonl
(progress to stderr, the table to stdout). The held-out videos (seed 2000 + segment count) are written once under
--work and reused.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clapper_core.synthetic import (  # noqa: E402
    LONG_FAMILIES,
    LONG_TIME_FAMILIES,
    ONE_FRAME_FAMILIES,
    WorldConfig,
    answer_right,
    generate_dataset,
)

HELDOUT_SEED = 2000  # + the segment count; training sets use the recipe's seed (0 by default)
MAX_NEW_TOKENS = 32  # a closed answer is a few tokens: one that reaches this never stops
# The targets the long world is built for (issue 28), on videos of 2 to 8 segments
ONE_FRAME_DROP = 5.0  # points a one-frame family may lose against one-segment videos
TIME_GAIN = 25.0  # points the time-only families must gain over a keyframe-only model
WHEN_RIGHT = 80.0  # per cent of when answers within 4 s of the truth


@dataclass(frozen=True)
class Answer:
    """One question asked of one held-out video, and what came back."""

    video: str
    segments: int
    family: str
    question: str
    truth: str
    answer: str
    right: bool
    stopped: bool  # ended on the end-of-turn token; False: a run-on


@dataclass(frozen=True)
class LongScores:
    answers: tuple[Answer, ...]

    def _of(self, family: str | None, segments: Iterable[int] | None) -> list[Answer]:
        keep = None if segments is None else set(segments)
        return [a for a in self.answers
                if (family is None or a.family == family) and (keep is None or a.segments in keep)]

    def accuracy(self, family: str, segments: Iterable[int] | None = None) -> float:
        """Share right of `family`'s answers on videos of these segment counts (all: None); NaN with none."""
        asked = self._of(family, segments)
        return sum(a.right for a in asked) / len(asked) if asked else float("nan")

    def group(self, families: tuple[str, ...], segments: Iterable[int] | None = None) -> float:
        """Mean of the families' accuracies (each family weighs the same), over the families asked."""
        accs = [acc for f in families if (acc := self.accuracy(f, segments)) == acc]  # acc == acc: not NaN
        return sum(accs) / len(accs) if accs else float("nan")

    def run_ons(self, segments: Iterable[int] | None = None) -> tuple[int, int]:
        """(answers that ran on, answers) on videos of these segment counts."""
        asked = self._of(None, segments)
        return sum(not a.stopped for a in asked), len(asked)

    @property
    def segment_counts(self) -> list[int]:
        return sorted({a.segments for a in self.answers})


# --- held-out videos and asking -----------------------------------------------------------------


def heldout(work: Path, segments: int, videos: int) -> Path:
    """The qa.jsonl of `videos` held-out videos of `segments` segments each, written once under `work`."""
    out = work / f"heldout-{segments}seg"
    key = {"videos": videos, "seed": HELDOUT_SEED + segments, "segments": segments}
    done = out / "complete.json"
    if not done.is_file() or json.loads(done.read_text()) != key:
        generate_dataset(out, num_videos=videos, seed=HELDOUT_SEED + segments, prefix=f"long{segments}s-",
                         config=WorldConfig(segments=(segments, segments)), captions=False)
        done.write_text(json.dumps(key))
    return out / "qa.jsonl"


def by_video(qa_file: Path) -> dict[Path, list[dict]]:
    """qa.jsonl's rows grouped by video (absolute path), in file order."""
    grouped: dict[Path, list[dict]] = {}
    for line in Path(qa_file).read_text().splitlines():
        row = json.loads(line)
        grouped.setdefault(Path(qa_file).parent / row["video"], []).append(row)
    return grouped


def ask_video(session, rows: list[dict], gen) -> list[Answer]:
    """Ask `session` (a `VideoSession`, or anything with its `ask` and `last_stats`) each row's question."""
    out = []
    for row in rows:
        answer = session.ask(row["question"], gen)
        stopped = session.last_stats.stopped
        out.append(Answer(video=row["video"], segments=row["segments"], family=row["family"],
                          question=row["question"], truth=row["answer"], answer=answer, stopped=stopped,
                          right=stopped and answer_right(row["family"], answer, row["answer"])))
    return out


def score(open_session: Callable[[Path], object], qa_files: list[Path], gen, *, on_video=None) -> LongScores:
    """Every question of `qa_files`, each video opened once by `open_session(path)`."""
    videos = [item for qa in qa_files for item in by_video(qa).items()]
    answers: list[Answer] = []
    for i, (path, rows) in enumerate(videos, start=1):
        answers += ask_video(open_session(path), rows, gen)
        if on_video is not None:
            on_video(i, len(videos))
    return LongScores(tuple(answers))


def score_model(model: str, qa_files: list[Path], *, max_new_tokens: int, device: str, log) -> LongScores:
    """Load `model` and score it on `qa_files`, sampling as `clapper ask` does (1 fps, its segment size)."""
    from clapper_core.generation import GenerationConfig, VideoSession
    from clapper_core.model import LoadConfig, load_model
    from clapper_core.video import SamplingConfig, load_clip

    loaded = load_model(LoadConfig(model=model, device=device))
    sampling = SamplingConfig(segment_size=loaded.model.config.segment_size)

    def progress(i: int, n: int) -> None:
        if i % 10 == 0 or i == n:
            log(f"[{model}] {i}/{n} videos")

    return score(lambda path: VideoSession(loaded, load_clip(path, sampling)), qa_files,
                 GenerationConfig(max_new_tokens=max_new_tokens), on_video=progress)


def save_answers(scores: LongScores, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(a)) + "\n" for a in scores.answers))


# --- the table and the targets ------------------------------------------------------------------


def pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}%"  # x != x: NaN, no question of the kind


def table(scores: LongScores, title: str) -> list[str]:
    """A row per segment count, then one for every video of 2 or more segments: each family, the one-frame and
    time-only means and the run-ons."""
    fams = [f for f in LONG_FAMILIES if any(a.family == f for a in scores.answers)]
    head = f"{'segments':<10}{'videos':>7}" + "".join(f"{f:>12}" for f in fams) + f"{'1-frame':>10}{'time':>8}" \
        + f"{'run-ons':>12}"
    lines = [title, head, "-" * len(head)]
    counts = scores.segment_counts
    long = [k for k in counts if k > 1]
    rows = [(str(k), [k]) for k in counts] + ([(_span(long), long)] if len(long) > 1 else [])
    for name, segs in rows:
        videos = len({a.video for a in scores.answers if a.segments in segs})
        ran, asked = scores.run_ons(segs)
        lines.append(f"{name:<10}{videos:>7}" + "".join(f"{pct(scores.accuracy(f, segs)):>12}" for f in fams)
                     + f"{pct(scores.group(ONE_FRAME_FAMILIES, segs)):>10}"
                     + f"{pct(scores.group(LONG_TIME_FAMILIES, segs)):>8}" + f"{f'{ran}/{asked}':>12}")
    return lines


def targets(scores: LongScores, baseline: LongScores | None = None) -> list[str]:
    """Each target of the long world beside this model's figure, and whether it is met."""
    long = [k for k in scores.segment_counts if k > 1]
    lines = [f"targets, on videos of {_span(long)} segments:"]
    for f in ONE_FRAME_FAMILIES:
        one, many = scores.accuracy(f, [1]), scores.accuracy(f, long)
        lines.append(_target(f"{f}: {pct(many)} vs {pct(one)} on one segment", f"within {ONE_FRAME_DROP:.0f} points",
                             100 * (many - one) >= -ONE_FRAME_DROP if one == one and many == many else None))
    time = scores.group(LONG_TIME_FAMILIES, long)
    if baseline is None:
        lines.append(_target(f"time-only families: {pct(time)} (no keyframe-only model: --baseline)",
                             f"+{TIME_GAIN:.0f} points over keyframe only", None))
    else:
        base = baseline.group(LONG_TIME_FAMILIES, long)
        lines.append(_target(f"time-only families: {pct(time)} vs {pct(base)} keyframe only",
                             f"+{TIME_GAIN:.0f} points", 100 * (time - base) >= TIME_GAIN))
    when = scores.accuracy("when", long)
    lines.append(_target(f"when within 4 s: {pct(when)}", f">= {WHEN_RIGHT:.0f}%",
                         100 * when >= WHEN_RIGHT if when == when else None))
    ran, asked = scores.run_ons()
    lines.append(_target(f"run-ons: {ran} of {asked} answers (all segment counts)", "0", ran == 0))
    return lines


def _span(counts: list[int]) -> str:
    return f"{counts[0]}-{counts[-1]}" if counts else "no"


def _target(figure: str, goal: str, met: bool | None) -> str:
    return f"  {figure:<62} target {goal:<32} {'-' if met is None else 'met' if met else 'NOT MET'}"


def _tag(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model.strip("/")).strip("_")[-60:] or "model"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/long_video.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="clapper-demo", help="the model to score (default: the built-in demo model)")
    p.add_argument("--baseline", metavar="MODEL",
                   help="a keyframe-only model trained the same way, for the time-only target (scored too)")
    p.add_argument("--segments", type=int, nargs="+", default=list(range(1, 9)), metavar="K",
                   help="segment counts of the held-out videos (default 1 to 8)")
    p.add_argument("--videos", type=int, default=40, help="held-out videos of each segment count")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                   help="an answer that reaches this without stopping is a run-on")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--work", type=Path, default=ROOT / "runs/long_video", help="held-out videos and answers")
    args = p.parse_args(argv)
    if args.videos < 1 or any(k < 1 for k in args.segments):
        p.error("--videos and every --segments count must be at least 1")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    qa_files = [heldout(args.work, k, args.videos) for k in sorted(set(args.segments))]
    runs = {}
    for model in filter(None, (args.model, args.baseline)):
        runs[model] = score_model(model, qa_files, max_new_tokens=args.max_new_tokens, device=args.device, log=log)
        save_answers(runs[model], args.work / f"answers-{_tag(model)}.jsonl")
    scores = runs[args.model]
    print(f"held-out: {args.videos} videos of each {', '.join(map(str, sorted(set(args.segments))))} segments "
          f"(4 s each, 1 fps), {len(scores.answers)} questions, at most {args.max_new_tokens} new tokens an answer")
    for model, s in runs.items():
        print("\n".join(["", *table(s, model + (" (keyframe only)" if model == args.baseline else ""))]))
    print("\n" + "\n".join(targets(scores, runs.get(args.baseline))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
