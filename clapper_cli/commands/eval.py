"""`clapper eval BENCHMARK`: multiple-choice accuracy under a visual-token budget.

The accuracy table goes to stderr; with `--json` the report goes to stdout. Every answer is
kept in `<output-dir>/results.jsonl` (one record per question) and the report in
`<output-dir>/report.json`; the same command run again resumes where it stopped.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

BENCH_PANEL = "Benchmark"


class FormatChoice(str, Enum):
    auto = "auto"
    generic = "generic"
    videomme = "videomme"
    mlvu = "mlvu"
    tempcompass = "tempcompass"

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper eval Video-MME/videomme/test-00000-of-00001.parquet --video-root Video-MME/data[/cyan]
  [cyan]clapper eval MLVU/json --video-root MLVU -m ./clapper-7b --max-visual-tokens 3000[/cyan]
  [cyan]clapper eval TempCompass/questions/multi-choice.json --video-root TempCompass/videos --frames 32[/cyan]
  [cyan]clapper eval bench.jsonl --limit 200 --shuffle --seed 1 --json | jq .accuracy[/cyan]
  [cyan]clapper eval bench.jsonl --video-root videos/ --batch-size 32[/cyan]   [dim]# answers generated together[/dim]
  [cyan]torchrun --nproc-per-node 8 -m clapper_cli.main eval bench.parquet --video-root videos/[/cyan]   [dim]# one GPU each[/dim]

Layouts: Video-MME (parquet or JSON), MLVU (a task file or its json/ folder), TempCompass
multi-choice.json, or generic JSON / JSONL / Parquet rows with video, question, options, answer
and optional task. A missing video counts as a wrong answer. Answers are cut at 32 new
tokens unless --max-new-tokens (or the config) says otherwise.
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip("/")).strip("-") or "model"


def eval_command(
    benchmark: Annotated[
        Path,
        typer.Argument(help="Annotation file (JSON, JSONL, Parquet) or MLVU's json/ folder.", show_default=False,
                       metavar="BENCHMARK"),
    ],
    video_root: Annotated[
        Optional[Path],
        typer.Option("--video-root", help="Folder holding the videos (default: the benchmark file's folder).",
                     show_default=False, file_okay=False, rich_help_panel=BENCH_PANEL),
    ] = None,
    format: Annotated[
        FormatChoice,
        typer.Option("--format", help="Annotation layout (auto: recognised from the file).",
                     case_sensitive=False, rich_help_panel=BENCH_PANEL),
    ] = FormatChoice.auto,
    max_visual_tokens: Annotated[
        int,
        typer.Option("--max-visual-tokens", help="Visual-token budget per video: the most frames that fit.",
                     rich_help_panel=BENCH_PANEL),
    ] = opt.D.EVAL_MAX_VISUAL_TOKENS,
    frames: Annotated[
        Optional[int],
        typer.Option("--frames", help="Fixed frames per video instead of the budget.", show_default=False,
                     rich_help_panel=BENCH_PANEL),
    ] = None,
    fps: Annotated[
        Optional[float],
        typer.Option("--fps", help="Sample this many frames per second, up to what the budget (or --frames) "
                     "allows (default: that many frames spread over the whole video).", show_default=False,
                     rich_help_panel=BENCH_PANEL),
    ] = None,
    limit: Annotated[
        Optional[int],
        typer.Option("--limit", help="Only the first N questions (after --shuffle).", show_default=False,
                     rich_help_panel=BENCH_PANEL),
    ] = None,
    shuffle: Annotated[
        bool,
        typer.Option("--shuffle", metavar="", help="Shuffle the videos first (a video's questions stay together).",
                     rich_help_panel=BENCH_PANEL),
    ] = False,
    seed: Annotated[
        Optional[int],
        typer.Option("--seed", help="Seed for --shuffle (default 0) and for sampling when --temperature > 0.",
                     show_default=False, rich_help_panel=BENCH_PANEL),
    ] = None,
    model: opt.Model = None,
    quant: opt.Quant = None,
    device: opt.Device = None,
    max_new_tokens: opt.MaxNewTokens = None,
    temperature: opt.Temperature = None,
    batch_size: opt.BatchSize = None,
    output_dir: Annotated[
        Optional[Path],
        typer.Option("--output-dir", "-o", help="Where results.jsonl and report.json go "
                     "(default: clapper-eval/<benchmark>-<model>-<budget>); a re-run resumes.",
                     show_default=False, file_okay=False, rich_help_panel=opt.OUTPUT_PANEL),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Start afresh instead of resuming.",
                           rich_help_panel=opt.OUTPUT_PANEL),
    ] = False,
    json_output: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:  # over 60 lines only because typer declares the options in the signature; the body is 30
    """Score a model on a multiple-choice video benchmark at a fixed visual-token budget."""
    from clapper_core.distributed import dist_info
    from clapper_core.errors import ConfigError
    from clapper_core.eval import EvalOptions, evaluate, load_benchmark
    from clapper_core.settings import resolve

    from clapper_cli.render import Display

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}.")
    settings = resolve(dict(model=model, quant=opt.choice_value(quant), device=opt.choice_value(device),
                            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                            batch_size=batch_size))
    if settings.sources.get("max_new_tokens") == "default":
        settings = replace(settings, max_new_tokens=opt.D.EVAL_MAX_NEW_TOKENS)
    options = EvalOptions(max_visual_tokens=max_visual_tokens, frames=frames, fps=fps, overwrite=overwrite)
    bench = load_benchmark(benchmark, video_root=video_root, format=opt.choice_value(format))
    bench = bench.select(limit=limit, shuffle=shuffle, seed=seed or 0)
    if output_dir is None:
        budget = (f"{frames}f" if frames else f"{max_visual_tokens}tok") + (f"-{fps:g}fps" if fps else "")
        output_dir = Path("clapper-eval") / f"{_slug(bench.name)}-{_slug(Path(settings.model).name)}-{budget}"
    # under torchrun only rank 0 talks; the other ranks still print their errors
    with Display(quiet=quiet or not dist_info().is_main, json_output=json_output, batch=True) as display:
        report = evaluate(bench, settings, options, output_dir=output_dir, on_event=display)
    if report is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    if json_output:
        sys.stdout.write(report.to_json() + "\n")
        sys.stdout.flush()
    if not quiet:
        render_report(report)


def render_report(report) -> None:
    """Overall and per-task accuracy as a rich table on stderr, then what the run used."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    budget = (f"{report.max_visual_tokens:,}-token budget" if report.max_visual_tokens is not None
              else "fixed frame count")
    table = Table(title=f"{report.benchmark} · {report.model} · {report.frames} frames ({budget})",
                  title_justify="left")
    table.add_column("task")
    table.add_column("questions", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    for name, score in report.by_task.items():
        table.add_row(name, str(score.total), str(score.correct), f"{100 * score.accuracy:.1f}%")
    table.add_section()
    table.add_row("[bold]overall[/bold]", str(report.total), str(report.correct),
                  f"[bold]{100 * report.accuracy:.1f}%[/bold]")
    console.print(table)
    used = report.visual_tokens
    tokens = (f"visual tokens per video: {used['min']:,}–{used['max']:,} (mean {used['mean']:,}), "
              f"planned {report.planned_visual_tokens:,}") if used else "no video was encoded"
    console.print(f"[dim]{tokens}; {report.unparseable} unparseable answers, {report.missing_videos} questions "
                  f"with a missing video, {report.failed} with a video that failed; {report.seconds:.1f} s[/dim]",
                  highlight=False)
    console.print(f"[dim]results: {report.results}\nreport:  {report.report}[/dim]", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("eval", epilog=EPILOG, no_args_is_help=True)(eval_command)
