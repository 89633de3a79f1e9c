"""`clapper config show|get|set|unset|path`: the defaults every command starts from.

Precedence: command-line flag > `CLAPPER_*` environment variable > config file > built-in.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper config show[/cyan]                        [dim]# every setting, its value and where it comes from[/dim]
  [cyan]clapper config set model ./checkpoints/clapper[/cyan]
  [cyan]clapper config set quant 4bit[/cyan]
  [cyan]clapper config unset fps[/cyan]
  [cyan]clapper config path[/cyan]                        [dim]# the file (set CLAPPER_CONFIG to use another)[/dim]

Environment variables override the file: [cyan]CLAPPER_MODEL[/cyan], [cyan]CLAPPER_FPS[/cyan], [cyan]CLAPPER_QUANT[/cyan], ...
"""

config_app = opt.App(
    name="config",
    help="Show or change the default settings (config file < CLAPPER_* environment < flags).",
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@config_app.command("show", epilog=EPILOG)
def show(json_output: opt.Json = False) -> None:
    """Every setting with its value and where the value comes from."""
    from clapper_core.settings import KEYS, config_path, resolve

    settings = resolve()
    if json_output:
        data = {k: {"value": getattr(settings, k), "source": settings.sources[k]} for k in KEYS}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    width = max(map(len, KEYS))
    for key in KEYS:
        value = getattr(settings, key)
        shown = "none" if value is None else str(value)
        sys.stdout.write(f"{key:<{width}}  {shown:<24} ({settings.sources[key]})\n")
    print(f"config file: {config_path()}", file=sys.stderr)


@config_app.command("get")
def get(key: Annotated[str, typer.Argument(help="Setting name, e.g. model or max-frames.")]) -> None:
    """Print one setting's value (as every command would use it)."""
    from clapper_core.settings import normalize_key, resolve

    value = getattr(resolve(), normalize_key(key))
    sys.stdout.write(("none" if value is None else str(value)) + "\n")


@config_app.command("set")
def set_(
    key: Annotated[str, typer.Argument(help="Setting name: see `clapper config show`.")],
    value: Annotated[str, typer.Argument(help="New value; it is checked before it is saved.")],
) -> None:
    """Save a default in the config file."""
    from clapper_core.settings import set_value

    key, stored, path = set_value(key, value)
    print(f"{key} = {stored!r} saved in {path}", file=sys.stderr)


@config_app.command("unset")
def unset(key: Annotated[str, typer.Argument(help="Setting name.")]) -> None:
    """Remove a default from the config file (the built-in default applies again)."""
    from clapper_core.settings import unset_value

    key, present, path = unset_value(key)
    print(f"{key} {'removed from' if present else 'was not set in'} {path}", file=sys.stderr)


@config_app.command("path")
def path() -> None:
    """Print the config file's path (it need not exist yet)."""
    from clapper_core.settings import config_path

    sys.stdout.write(f"{config_path()}\n")


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.add_typer(config_app, name="config")
