"""The typer app: each command lives in `clapper_cli.commands.<name>` and registers itself.

Command modules import only typer and light helpers at module level; anything that pulls
in torch or transformers is imported inside the command body, so `clapper --help` and
shell completion stay fast (tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from clapper_cli import options as opt
from clapper_cli.commands import (
    ask,
    caption,
    completions,
    config,
    convert,
    doctor,
    probe,
    serve,
    train,
)
from clapper_cli.commands import (
    eval as eval_cmd,
)

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper ask clip.mp4 "what happens?"[/cyan]
  [cyan]clapper caption --fps 1 videos/ --output captions.jsonl[/cyan]
  [cyan]clapper caption videos/ --json | jq -r .answer[/cyan]
  [cyan]clapper doctor[/cyan]   [dim]# what is installed, which GPU, where the model comes from[/dim]

Run [cyan]clapper COMMAND --help[/cyan] for a command's options and examples.
"""


app = opt.App(
    name="clapper",
    help="Video understanding on your own GPU: ask questions about videos, caption folders of them.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from clapper_core import __version__

        typer.echo(f"clapper {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Video understanding on your own GPU: ask questions about videos, caption folders of them."""


if os.environ.get("_CLAPPER_COMPLETE"):  # a completion request from a shell script
    from typer.completion import completion_init

    completion_init()

for module in (probe, ask, caption, serve, eval_cmd, train, convert, config, doctor, completions):
    module.register(app)
