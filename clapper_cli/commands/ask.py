"""`clapper ask VIDEO QUESTION...`: answers streamed to stdout, token by token.

The module imports only typer and the shared options; the model, PyAV and rich load inside
the command body, so `clapper --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper ask clip.mp4 "what happens?"[/cyan]
  [cyan]clapper ask clip.mp4 "who enters first?" "what do they carry?"[/cyan]   [dim]# decoded and encoded once[/dim]
  [cyan]clapper ask clip.mp4 "describe it" --fps 2 --max-frames 64 --model ./my-clapper[/cyan]
  [cyan]clapper ask clip.mp4 "what happens?" --json | jq -r .answer[/cyan]
  [cyan]clapper ask clip.mp4 --chat[/cyan]   [dim]# a conversation: follow-ups see the earlier answers[/dim]
  [cyan]clapper ask --server http://127.0.0.1:8000 clip.mp4 "what happens?"[/cyan]   [dim]# a running clapper serve[/dim]
"""


def ask(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False, metavar="VIDEO")],
    questions: Annotated[
        list[str] | None,
        typer.Argument(help="One or more questions about the video.", show_default=False, metavar="QUESTION"),
    ] = None,
    chat: Annotated[
        bool, typer.Option("--chat", metavar="", help="A conversation: after the questions, keep asking follow-ups "
                           "interactively; each answer stays in the context.")
    ] = False,
    server: Annotated[
        Optional[str], typer.Option("--server", metavar="URL", show_default=False,
                                    help="Ask a running `clapper serve` (default: $CLAPPER_SERVER) instead of "
                                    "loading the model here.")
    ] = None,
    model: opt.Model = None,
    quant: opt.Quant = None,
    device: opt.Device = None,
    fps: opt.Fps = None,
    max_frames: opt.MaxFrames = None,
    segment_size: opt.SegmentSize = None,
    max_new_tokens: opt.MaxNewTokens = None,
    temperature: opt.Temperature = None,
    seed: opt.Seed = None,
    json_output: opt.Json = False,
    quiet: opt.Quiet = False,
) -> None:
    """Ask questions about a video; the answers stream to stdout."""
    from clapper_core import runner
    from clapper_core.errors import ConfigError
    from clapper_core.settings import resolve

    from clapper_cli.render import Display

    questions = list(questions or [])
    if not questions and not chat:
        raise ConfigError('no question given: add one after the video, e.g. clapper ask clip.mp4 "what happens?"')
    if chat and json_output:
        raise ConfigError("--chat and --json do not mix: use --json with questions given on the command line")
    settings = resolve(dict(
        model=model, quant=opt.choice_value(quant), device=opt.choice_value(device), fps=fps,
        max_frames=max_frames, segment_size=segment_size, max_new_tokens=max_new_tokens,
        temperature=temperature, seed=seed,
    ))
    with Display(quiet=quiet, json_output=json_output) as display:
        server = server or os.environ.get("CLAPPER_SERVER") or None
        if server:
            from clapper_core.serve.client import open_remote

            job = open_remote(server, video, settings, conversation=chat)
        else:
            job = runner.open_video(video, settings, on_event=display, conversation=chat)
        for n, question in enumerate(questions):
            if n and not json_output:
                sys.stdout.write("\n")  # a blank line between answers tells them apart
            label = len(questions) > 1 and not json_output and sys.stdout.isatty()
            _answer(job, question, display, json_output=json_output, label=label)
        if chat:
            _chat(job, display)


def _answer(job, question: str, display, *, json_output: bool, label: bool) -> None:
    from clapper_core.records import Record

    out = sys.stdout
    if label:
        out.write(f"\033[1mQ: {question}\033[0m\n")
    for item in job.stream(question):
        if isinstance(item, Record):
            if json_output:
                out.write(item.to_json() + "\n")
            else:
                out.write("\n")
            out.flush()
            display.timings(item)
        elif not json_output:
            out.write(item)
            out.flush()


def _chat(job, display) -> None:
    """Read follow-up questions from the terminal until an empty line, `exit` or Ctrl-D."""
    display.info("Ask about the video; an empty line, `exit` or Ctrl-D ends the chat.")
    while True:
        try:
            question = input("> ").strip() if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            break
        if not sys.stdin.isatty():
            if question == "":  # end of piped input
                break
            question = question.strip()
        if question in ("", "exit", "quit"):
            break
        _answer(job, question, display, json_output=False, label=False)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("ask", epilog=EPILOG, no_args_is_help=True)(ask)
