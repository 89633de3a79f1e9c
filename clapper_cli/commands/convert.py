"""`clapper convert SRC DEST`: write a model that loads as Clapper as a standalone Clapper checkpoint."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper convert llava-hf/llava-onevision-qwen2-0.5b-ov-hf ./clapper-0.5b[/cyan]
  [cyan]clapper convert ./llava-ov-7b ./clapper-7b --overwrite[/cyan]
"""


def convert(
    src: Annotated[
        str,
        typer.Argument(metavar="SRC",
                       help="Model to read: a directory or a Hugging Face id (LLaVA-OneVision or Clapper)."),
    ],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="Directory to write the Clapper checkpoint to.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into DEST even if it is not empty.")] = False,
    json_out: opt.Json = False,
) -> None:
    """Convert a LLaVA-OneVision (or Clapper) checkpoint into a standalone Clapper checkpoint.

    The vision tower, projector and LLM weights are copied; a TimePerceiver the source lacks starts
    as average pooling (train it with [bold]clapper train[/bold]). Prints the written directory.
    """
    from clapper_core.model.convert import convert_model

    result = convert_model(src, dest, overwrite=overwrite)
    for notice in result.notices:
        print(f"Note: {notice}", file=sys.stderr)
    if json_out:
        typer.echo(json.dumps({"source": result.source, "dest": str(result.dest), "notices": list(result.notices)}))
    else:
        typer.echo(str(result.dest))


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("convert", epilog=EPILOG)(convert)
