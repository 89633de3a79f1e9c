"""The typer app: each command lives in `clapper_cli.commands.<name>` and registers itself.

Command modules import only typer and light helpers at module level; anything that pulls
in torch or transformers is imported inside the command body, so `clapper --help` and
shell completion stay fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clapper_cli.commands import (
    ask,
    caption,
    completions,
    config,
    convert,
    doctor,
    eval as eval_cmd,
    probe,
    train,
)

app = typer.Typer(
    name="clapper",
    help="Video understanding on your own GPU: ask questions about videos, caption folders of them.",
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
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Video understanding on your own GPU: ask questions about videos, caption folders of them."""


for module in (probe, ask, caption, eval_cmd, train, convert, config, doctor, completions):
    module.register(app)
