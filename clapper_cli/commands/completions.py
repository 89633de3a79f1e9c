"""`clapper completions`: shell completion scripts for bash, zsh and fish, generated from the app.

The scripts call back into `clapper` (with `_CLAPPER_COMPLETE` set) to complete commands,
options and choices, so they stay right as commands change; the copies in `completions/`
are written by `clapper completions generate --dir completions` and a test fails when they
differ from what this command prints.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

PROG = "clapper"
COMPLETE_VAR = "_CLAPPER_COMPLETE"
FILE_NAMES = {"bash": "clapper.bash", "zsh": "_clapper", "fish": "clapper.fish"}

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper completions generate bash > ~/.local/share/bash-completion/completions/clapper[/cyan]
  [cyan]clapper completions generate zsh > "${fpath[1]}/_clapper"[/cyan]
  [cyan]clapper completions generate fish > ~/.config/fish/completions/clapper.fish[/cyan]
  [cyan]clapper completions generate --dir completions[/cyan]   [dim]# all three, as shipped in the repository[/dim]
"""


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def script(shell: str) -> str:
    """The completion script for `shell`, ending in a newline."""
    from typer.completion import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


completions_app = opt.App(
    name="completions",
    help="Shell completion scripts (bash, zsh, fish).",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@completions_app.command("generate", epilog=EPILOG)
def generate(
    shell: Annotated[
        Optional[Shell],
        typer.Argument(help="Print the script for this shell.", show_default=False),
    ] = None,
    directory: Annotated[
        Optional[Path],
        typer.Option("--dir", help="Write the scripts for every shell into this directory instead.",
                     file_okay=False, show_default=False),
    ] = None,
) -> None:
    """Print a shell's completion script, or write all of them with --dir."""
    from clapper_core.errors import ConfigError

    if (shell is None) == (directory is None):
        raise ConfigError("give a shell (bash, zsh or fish) or --dir DIR, e.g. clapper completions generate bash")
    if shell is not None:
        sys.stdout.write(script(shell.value))
        return
    assert directory is not None
    directory.mkdir(parents=True, exist_ok=True)
    for name, file_name in FILE_NAMES.items():
        (directory / file_name).write_text(script(name), encoding="utf-8")
        print(f"wrote {directory / file_name}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.add_typer(completions_app, name="completions")
