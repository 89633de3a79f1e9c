"""`python -m clapper_core.synthetic OUT_DIR -n 500 --seed 0`: write a synthetic dataset."""

from __future__ import annotations

import argparse
import sys

from clapper_core.synthetic.world import WorldConfig
from clapper_core.synthetic.writer import generate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clapper_core.synthetic",
        description="Write short videos of moving, appearing and colour-changing shapes, with questions "
        "(train.jsonl in the LLaVA format, qa.jsonl with question families) under OUT_DIR.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("-n", "--num-videos", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="frame width and height in pixels")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=4, help="length of a video (with --segments: of a segment)")
    parser.add_argument("--segments", type=int, nargs=2, metavar=("FEWEST", "MOST"),
                        help="the long world: each video lasts a number of segments drawn from FEWEST to MOST, "
                             "with when and net change questions")
    parser.add_argument("--prefix", default="synth", help="video file name prefix")
    parser.add_argument("--no-captions", action="store_true", help="leave the caption turn out of train.jsonl")
    parser.add_argument("--multi-turn", action="store_true", help="one record per video, its questions as turns")
    parser.add_argument("--multiple-choice", type=float, default=0.0, metavar="SHARE",
                        help="share of questions asked with lettered options, answered with a letter (0 to 1)")
    parser.add_argument("--all-orders", action="store_true",
                        help="every order question a video allows (each pair of events, both ways), not one")
    parser.add_argument("--all-changes", action="store_true",
                        help="\"What happened to the X?\" about every object that question may ask of, not one")
    parser.add_argument("--end-colours", action="store_true",
                        help="also ask the colour of every corner object at the end of the video")
    parser.add_argument("--caption-prompts", action="store_true",
                        help="ask each caption in one of several ways (\"What happens?\", ...), not always one")
    args = parser.parse_args(argv)
    try:
        world = WorldConfig(size=args.size, fps=args.fps, seconds=args.seconds,
                            segments=tuple(args.segments) if args.segments else None)
        summary = generate_dataset(
            args.out_dir,
            num_videos=args.num_videos,
            seed=args.seed,
            config=world,
            prefix=args.prefix,
            captions=not args.no_captions,
            multi_turn=args.multi_turn,
            multiple_choice=args.multiple_choice,
            all_orders=args.all_orders,
            all_changes=args.all_changes,
            end_colours=args.end_colours,
            caption_prompts=args.caption_prompts,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(
        f"Wrote {summary.num_videos} videos and {summary.num_questions} questions to {summary.out_dir}",
        file=sys.stderr,
    )
    print(summary.train_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
