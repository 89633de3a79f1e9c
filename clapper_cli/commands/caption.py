"""`clapper caption PATH...`: one caption per video, over files and whole directory trees.

Captions go to stdout (`path: caption`, or JSON Lines with `--json`); progress and the
summary go to stderr. With `--output`, every finished video is appended to a JSONL file at
once, and a re-run skips the videos already in it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper caption clip.mp4[/cyan]
  [cyan]clapper caption --fps 1 videos/[/cyan]   [dim]# every video under videos/, recursively[/dim]
  [cyan]clapper caption videos/ --output captions.jsonl[/cyan]   [dim]# resumes if interrupted; --overwrite to redo[/dim]
  [cyan]clapper caption videos/ -o captions.jsonl --batch-size 32[/cyan]   [dim]# more answers at once on a big GPU[/dim]
  [cyan]clapper caption videos/ --prompt "List the objects that move." --json | jq -r .answer[/cyan]
  [cyan]torchrun --nproc-per-node 8 -m clapper_cli.main caption videos/ -o captions.jsonl[/cyan]   [dim]# one GPU each[/dim]

Exit code 1 when any video failed, in this run or (recorded in --output) in an
earlier one: failures are recorded with their error, --retry-failed tries them
again. Images in a directory are one-frame videos. Ctrl-C exits 130 and keeps
every finished video in --output; the same command resumes.
"""


def caption(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Video files and/or directories (walked recursively).", show_default=False,
                       metavar="PATH"),
    ],
    model: opt.Model = None,
    quant: opt.Quant = None,
    device: opt.Device = None,
    fps: opt.Fps = None,
    max_frames: opt.MaxFrames = None,
    segment_size: opt.SegmentSize = None,
    max_new_tokens: opt.MaxNewTokens = None,
    temperature: opt.Temperature = None,
    seed: opt.Seed = None,
    batch_size: opt.BatchSize = None,
    prompt: Annotated[
        Optional[str],
        typer.Option("--prompt", "-p", help="What to ask about each video.", show_default=False,
                     rich_help_panel=opt.GENERATION_PANEL),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Append one JSON line per video to this file; a re-run resumes.",
                     show_default=False, dir_okay=False, rich_help_panel=opt.OUTPUT_PANEL),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Start --output afresh instead of resuming.",
                           rich_help_panel=opt.OUTPUT_PANEL),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", metavar="", help="On resume, try again the videos that failed before.",
                           rich_help_panel=opt.OUTPUT_PANEL),
    ] = False,
    json_output: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Caption every video in the given files and directories."""
    from clapper_core.runner import BatchInterrupted, Event, caption_batch
    from clapper_core.settings import resolve

    from clapper_cli.render import Display

    settings = resolve(dict(
        model=model, quant=opt.choice_value(quant), device=opt.choice_value(device), fps=fps,
        max_frames=max_frames, segment_size=segment_size, max_new_tokens=max_new_tokens,
        temperature=temperature, seed=seed, prompt=prompt, batch_size=batch_size,
    ))
    with Display(quiet=quiet, json_output=json_output, batch=True) as display:
        single = len(paths) == 1 and paths[0].is_file()

        def on_event(event: Event) -> None:
            display(event)
            if event.kind == "record" and event.record is not None:  # in input order, as the output file
                _print_record(event.record, json_output=json_output, single=single)

        try:
            summary = caption_batch(paths, settings, output=output, overwrite=overwrite,
                                    retry_failed=retry_failed, on_event=on_event)
        except BatchInterrupted as exc:
            display.stop()
            print(describe_interrupted(exc.summary), file=sys.stderr, flush=True)
            raise
    if summary.total > 1 or not summary.ok or summary.skipped:
        display.info(summary.describe())
    if not summary.ok:
        raise typer.Exit(1)


def describe_interrupted(summary) -> str:
    """What an interrupted batch kept, and how to go on."""
    if not summary.output:
        done = summary.succeeded + summary.failed
        return (f"{done} of {summary.total} videos were captioned above; nothing was saved "
                "(with --output FILE.jsonl a re-run resumes).")
    where = f" (rank {summary.rank} of {summary.world_size})" if summary.world_size > 1 else ""
    return (f"{summary.saved} of {summary.total} videos are saved in {summary.output}{where}; "
            "run the same command again to resume.")


def _print_record(record, *, json_output: bool, single: bool) -> None:
    if json_output:
        sys.stdout.write(record.to_json() + "\n")
    elif record.ok:
        answer = record.answer or ""
        sys.stdout.write(answer + "\n" if single else f"{record.video}: {' '.join(answer.split())}\n")
    else:
        return  # the failure is on stderr (the display) and in --output; stdout has answers only
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("caption", epilog=EPILOG, no_args_is_help=True)(caption)
