"""Does the TimePerceiver carry what the keyframe cannot? Accuracy per question family, three fast paths.

Three tiny Clappers are trained the same way (the demo model's recipe: `clapper train` stage 1, then
stage 2, the vision tower frozen) on the same synthetic videos, at the same visual-token budget per
4-frame segment, and scored on held-out videos:

    keyframe only          fast_path="none", a finer keyframe grid (10x10 patches pooled to 5x5 = 25)
    keyframe + avg pool    fast_path="avgpool": 4x4 keyframe + 3x3 spatio-temporal average = 25
    keyframe + perceiver   fast_path="perceiver": 4x4 keyframe + 3x3 TimePerceiver latents = 25

The keyframe is the first sampled frame of the segment, and the synthetic world keeps it blind to
time (the mover is still in the first second, every event comes later), so the time-only
families (direction, order, change, times) need the other frames of the segment.

    python scripts/temporal.py                      # the default run (over two hours on 2 CPU cores)
    python scripts/temporal.py --only "keyframe only" &  python scripts/temporal.py --only "keyframe + avg pool" &
    python scripts/demo_model.py --work runs/demo; wait
    python scripts/temporal.py --reuse --perceiver-from runs/demo/stage2   # the same, as parallel processes
    python scripts/temporal.py --stage2-steps 1500 --videos 2000 --eval-videos 150   # other sizes
    python scripts/temporal.py --seed 0 1 2         # three runs of the recipe: each seed's table, then their mean
    python scripts/temporal.py --reuse --train-videos 150   # also on 150 of each model's own training videos
    python scripts/temporal.py --only "keyframe only" --segments 1 8 --work runs/long_temporal
        # trained on the long world (scored here on one segment): scripts/long_video.py's --baseline

Under each table the order family is split by whether its two events happen to one object or to
two, as answered, then as chosen (the likelier of the question's two options,
`VideoSession.option_logprobs`): what a model knows apart from what it writes. Two trainings of one
recipe differ by more than the held-out set's noise (the paired interval printed under each table):
claims about a recipe rest on several seeds. Each seed trains in its own folder under --work (seed0,
seed1, ...); the held-out videos are the same for all. Each variant's answers are kept beside it
(answers-eval600.json, keyed by its model file and the question file), so printing a table again
with --reuse asks nothing again. A training stopped part way (trainings
checkpoint every --save-every steps) goes on from its last checkpoint with --reuse.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clapper_core.errors import ConfigError  # noqa: E402
from clapper_core.synthetic import FAMILIES, ONE_FRAME_FAMILIES, TIME_FAMILIES, generate_dataset  # noqa: E402
from scripts.demo_model import (  # noqa: E402
    add_recipe_arguments,
    build_recipe_model,
    recipe_data,
    recipe_from_arguments,
    train_recipe,
)

VARIANTS = {
    "keyframe only": dict(fast_path="none", vision_config={"image_size": 80}),
    "keyframe + avg pool": dict(fast_path="avgpool"),
    "keyframe + perceiver": dict(fast_path="perceiver"),
}


def _dataset(out: Path, *, qa: bool = False, **kwargs) -> Path:
    """The train.jsonl (or qa.jsonl) of a synthetic set, written once: parallel runs share it (the first
    to take the folder's lock writes it, the others wait for it and find it complete)."""
    out.mkdir(parents=True, exist_ok=True)
    key = json.loads(json.dumps(kwargs, default=repr))  # a long world's WorldConfig (--segments) by its repr
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = out / "complete.json"
        if not done.is_file() or json.loads(done.read_text()) != key:
            generate_dataset(out, **kwargs)
            done.write_text(json.dumps(key))
    return out / ("qa.jsonl" if qa else "train.jsonl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs/bench_temporal",
                   help="a folder per seed (seed0, seed1, ...), and the held-out videos shared by all")
    p.add_argument("--eval-videos", type=int, default=600,
                   help="held-out videos (seed 1000; the first N of them whatever N: 150 gives the earlier tables)")
    p.add_argument("--only", choices=list(VARIANTS), action="append", help="run only these variants")
    p.add_argument("--reuse", action="store_true",
                   help="score a variant already trained under --work instead of training it again "
                        "(to run the variants as parallel processes, then print one table), and continue "
                        "one that was stopped part way from its last checkpoint")
    p.add_argument("--train-videos", type=int, default=0, metavar="N",
                   help="also score each model on its first N training videos (the same families): does it fit "
                        "what it trained on?")
    p.add_argument("--save-every", type=int, default=500, metavar="N",
                   help="checkpoint every N steps (0: none), so that a stopped training can go on with --reuse")
    p.add_argument("--perceiver-from", type=Path, metavar="DIR",
                   help="score this model as the perceiver variant instead of training one: the demo "
                        "recipe's output (python scripts/demo_model.py --work runs/demo gives "
                        "runs/demo/stage2), which is that variant trained on the same videos; one seed only")
    add_recipe_arguments(p, several_seeds=True)
    args = p.parse_args(argv)
    if args.perceiver_from is not None and len(args.seed) > 1:
        p.error("--perceiver-from stands for one seed's perceiver; give one --seed with it")

    try:  # every seed's recipe checked before anything is written or trained
        recipes = {seed: recipe_from_arguments(args, seed=seed) for seed in args.seed}
    except ConfigError as e:
        p.error(str(e))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    qa_file = _dataset(args.work / f"eval{args.eval_videos}", num_videos=args.eval_videos, seed=1000, prefix="eval",
                       qa=True)  # a folder per size: runs scoring on other sizes never rewrite each other's videos
    runs = {seed: _run_seed(args, recipes[seed], qa_file, log) for seed in args.seed}
    first = next(iter(runs.values()))
    fams = [f for f in FAMILIES if any(s.total[f] for _, _, s, *_ in first)]
    print(f"held-out: {args.eval_videos} videos, "
          + ", ".join(f"{f} {first[0][2].total[f]}" for f in fams) + " questions")
    print(f"one-frame families: {', '.join(ONE_FRAME_FAMILIES)}; time-only families: {', '.join(TIME_FAMILIES)}")
    summaries = {}
    for seed, rows in runs.items():
        if len(runs) > 1:
            print(f"\nseed {seed}")
        summaries[seed] = _print_seed(rows, fams, qa_file)
    if len(runs) > 1:
        print(f"\nmean of {len(runs)} seeds ({', '.join(map(str, runs))})")
        _print_mean(list(runs.values()), list(summaries.values()), fams)
    return 0


def _header(fams: list[str]) -> str:
    head = f"{'model':<22}{'tok/seg':>8}" + "".join(f"{f:>10}" for f in fams) + f"{'1-frame':>9}{'time':>8}"
    return head + "\n" + "-" * len(head)


def _print_seed(rows: list[tuple], fams: list[str], qa_file: Path) -> tuple[dict, dict | None]:
    """One seed's table, its order split (free answers, then the likelier option) and the perceiver's paired gaps
    to keyframe only; returns both splits ({model: {1 or 2 objects: fraction right}}) and the gaps ({kind: (gap,
    low, high)}, None without both models)."""
    from scripts.synth_eval import order_by_objects, paired_difference

    print(_header(fams))
    for name, budget, s, *_ in rows:
        print(_row(name, budget, s.as_dict(), fams))
    splits = {name: order_by_objects(s, qa_file) for name, _, s, *_ in rows}
    order = {name: {k: right / n for k, (right, n) in split.items()} for name, split in splits.items()}
    print(_order_line(order, {k: n for k, (_, n) in next(iter(splits.values())).items()}))
    chosen = {name: {k: right / n for k, (right, n) in order_by_objects(s, qa_file, chosen=True).items()}
              for name, _, s, *_ in rows}
    print(_order_line(chosen, head=CHOSEN_HEAD))
    by = {r[0]: r[2] for r in rows}
    gaps = None
    if "keyframe only" in by and "keyframe + perceiver" in by:
        ko, tp = by["keyframe only"], by["keyframe + perceiver"]
        gaps = {kind: paired_difference(ko, tp, families) for kind, families in
                (("time-only", TIME_FAMILIES), ("one-frame", ONE_FRAME_FAMILIES))}
        print("perceiver vs keyframe only: " + ", ".join(
            f"{kind} {100 * d:+.1f} points ({100 * lo:+.1f} to {100 * hi:+.1f})" for kind, (d, lo, hi) in gaps.items()))
        print("(in brackets: 95% of 2,000 resamples of the held-out videos; the held-out set's share of the "
              "noise, not the training run's)")
    _print_fit([(name, budget, fit.as_dict()) for name, budget, _, _, fit in rows if fit is not None], fams)
    print("time per model (training when it ran, and scoring): " + ", ".join(f"{r[0]} {r[3]:.0f}s" for r in rows))
    return (order, chosen), gaps


def _print_fit(fit: list[tuple[str, int, dict]], fams: list[str]) -> None:
    """Rows of each model's accuracy on videos it trained on (--train-videos), where there are any: how well it
    fits the questions it learned, to read beside how well it answers held-out ones."""
    if fit:
        print("the same families asked on videos each model trained on (--train-videos):")
        for name, budget, acc in fit:
            print(_row(name, budget, {f: float("nan") for f in fams} | acc, fams))


def _print_mean(runs: list[list[tuple]], summaries: list[tuple[dict, dict | None]], fams: list[str]) -> None:
    """The mean of several seeds' tables and order splits, and the perceiver's gap seed by seed."""
    from scripts.synth_eval import mean_over_runs

    print(_header(fams))
    for i, (name, budget, *_) in enumerate(runs[0]):
        print(_row(name, budget, mean_over_runs([rows[i][2] for rows in runs]), fams))
    for which, head in ((0, ORDER_HEAD), (1, CHOSEN_HEAD)):
        orders = [splits[which] for splits, _ in summaries]
        print(_order_line({name: {k: sum(o[name][k] for o in orders) / len(orders) for k in split}
                           for name, split in orders[0].items()}, head=head))
    gaps = [g for _, g in summaries]
    if all(g is not None for g in gaps):
        print("perceiver vs keyframe only, seed by seed: " + "; ".join(
            f"{kind} " + ", ".join(f"{100 * g[kind][0]:+.1f}" for g in gaps)
            + f" (mean {100 * sum(g[kind][0] for g in gaps) / len(gaps):+.1f})" for kind in ("time-only", "one-frame")))
    _print_fit([(name, budget, mean_over_runs([rows[i][4] for rows in runs]))
                for i, (name, budget, *_, fit) in enumerate(runs[0]) if fit is not None], fams)


def _run_seed(args: argparse.Namespace, recipe, qa_file: Path, log) -> list[tuple]:
    """Train (or, with --reuse, find) and score each variant of one seed: (name, tokens per segment,
    FamilyScores, seconds, FamilyScores on its first --train-videos training videos or None) per variant."""
    from clapper_core.model.configuration_clapper import ClapperConfig

    root = args.work / f"seed{recipe.seed}"
    train_file = _dataset(root / "train", num_videos=recipe.videos, seed=recipe.seed, **recipe_data(recipe))
    rows = []
    for name in args.only or list(VARIANTS):
        t0 = time.perf_counter()
        work = root / name.replace(" ", "_").replace("+", "plus")
        final = work / "stage2"
        tag = f"[seed {recipe.seed}, {name}]"
        if name == "keyframe + perceiver" and args.perceiver_from is not None:
            final = args.perceiver_from
            log(f"{tag} scoring {final} (trained by the demo recipe)")
        elif args.reuse and (final / "model.safetensors").is_file():
            log(f"{tag} scoring {final} (already trained)")
        else:
            base = build_recipe_model(work / "base", recipe=recipe, **{k: dict(v) if isinstance(v, dict) else v
                                                                       for k, v in VARIANTS[name].items()})
            log(f"{tag} training ({recipe.stage1_steps} + {recipe.stage2_steps} steps"
                + (", each from its last checkpoint where there is one)" if args.reuse else ")"))
            final = train_recipe(base, train_file, work, recipe=recipe, save_every=args.save_every,
                                 resume=args.reuse, on_notice=lambda msg: log(f"{tag} {msg}"))
        config = ClapperConfig.from_pretrained(final)
        budget = config.token_costs.segment(config.segment_size)
        scores = _kept_scores(final, qa_file, work / f"answers-{qa_file.parent.name}.json", log, tag, choose=True)
        fit = None
        if args.train_videos:  # the same questions on videos it trained on: does it fit them?
            fit = _kept_scores(final, train_file.with_name("qa.jsonl"),
                               work / f"answers-train{args.train_videos}.json", log, tag, limit=args.train_videos)
        rows.append((name, budget, scores, time.perf_counter() - t0, fit))
        log(f"{tag} done in {time.perf_counter() - t0:.0f}s")
    return rows


def _kept_scores(final: Path, qa_file: Path, answers: Path, log, tag: str, **how):
    """The model at `final` scored on `qa_file` (`score_synthetic(..., **how)`), or its answers kept in `answers`
    from an earlier run: they are keyed by the model file, the question file and `how`, so printing the table
    again (--reuse) does not ask the same questions again."""
    from clapper_core.model import LoadConfig, load_model
    from scripts.synth_eval import load_scores, save_scores, score_synthetic

    weights = Path(final) / "model.safetensors"
    key = {"model": str(weights.resolve()), "model_mtime_ns": weights.stat().st_mtime_ns,
           "qa": str(qa_file.resolve()), "qa_mtime_ns": qa_file.stat().st_mtime_ns,
           **({"chosen": True} if how.get("choose") else {}), **({"limit": how["limit"]} if "limit" in how else {})}
    scores = load_scores(answers, key)
    if scores is None:
        scores = score_synthetic(load_model(LoadConfig(model=str(final), device="cpu")), qa_file, **how)
        answers.parent.mkdir(parents=True, exist_ok=True)
        save_scores(scores, answers, key)
    else:
        log(f"{tag} answers from {answers}")
    return scores


ORDER_HEAD = "order, both events to one object / to two"
CHOSEN_HEAD = "the same, choosing the likelier of the two options"


def _order_line(fractions: dict[str, dict[int, float]], counts: dict[int, int] | None = None,
                head: str = ORDER_HEAD) -> str:
    """The order family split by how many objects its two events happen to (1 or 2), per model."""
    if counts:
        head += f" ({counts.get(1, 0)} and {counts.get(2, 0)} questions)"
    pct = lambda f: "-" if f is None else f"{100 * f:.1f}%"  # noqa: E731
    return head + ": " + ", ".join(f"{name} {pct(f.get(1))} / {pct(f.get(2))}" for name, f in fractions.items())


def _row(name: str, budget: int, acc: dict[str, float], fams: list[str]) -> str:
    pct = lambda a, width: f"{'-':>{width}} " if a != a else f"{100 * a:>{width}.1f}%"  # noqa: E731  (a != a: NaN)
    return (f"{name:<22}{budget:>8}" + "".join(pct(acc[f], 9) for f in fams)
            + pct(acc["one_frame"], 8) + pct(acc["time_only"], 7))


if __name__ == "__main__":
    sys.exit(main())
