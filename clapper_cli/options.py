"""Shared typer option aliases, defined once and imported by every command.

Model and sampling options default to `None`: `None` means "not given on the command line",
and `clapper_core.settings.resolve` then fills it from `CLAPPER_*` environment variables or
the config file. That keeps the precedence (flag > environment > file > built-in default)
in one place instead of in typer's own `envvar=` handling.

Usage in a command::

    from clapper_cli import options as opt

    def ask(video: ..., model: opt.Model = None, quant: opt.Quant = None, json_out: opt.Json = False): ...

Defaults and choices come from `clapper_core.defaults`, so the help says what settings use. The
`*_option` factories build the same options with another panel or help (the `clapper train`
command, whose values do not go through settings, takes them with its own defaults).

This module imports only typer, the standard library and `clapper_core.defaults`: it is loaded
for `--help` and shell completion.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Optional

import typer
import typer.core

from clapper_core import defaults as D

MODEL_PANEL = "Model"
SAMPLING_PANEL = "Video sampling"
GENERATION_PANEL = "Generation"
OUTPUT_PANEL = "Output"


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum whose members are `values` (typer lists them as the option's choices)."""
    return Enum(name, [(v, v) for v in values], type=str)


QuantChoice = choices("QuantChoice", D.QUANTS)
DeviceChoice = choices("DeviceChoice", D.DEVICES)
AttnChoice = choices("AttnChoice", D.ATTNS)
SeekChoice = choices("SeekChoice", D.SEEKS)


def choice_value(value: Enum | str | None) -> str | None:
    """The plain string behind an Enum option value (or `None` when not given)."""
    return value.value if isinstance(value, Enum) else value


def _option(*names: str, panel: str, help: str, **kwargs: Any):
    kwargs.setdefault("show_default", False)
    return typer.Option(*names, help=help, rich_help_panel=panel, **kwargs)


# --- model -----------------------------------------------------------------------------


def model_option(*, panel: str = MODEL_PANEL):
    return _option("--model", "-m", metavar="<name|dir>", panel=panel,
                   help="Model: a local directory, a Hugging Face id, or [bold]clapper-demo[/bold] (the built-in demo).")


def quant_option(*, panel: str = MODEL_PANEL):
    return _option("--quant", case_sensitive=False, panel=panel,
                   help=f"Weight precision (default: {D.QUANT} = bf16 on GPU, fp32 on CPU).")


def device_option(*, panel: str = MODEL_PANEL):
    return _option("--device", case_sensitive=False, panel=panel,
                   help=f"Where to run (default: {D.DEVICE} = CUDA when available).")


Model = Annotated[Optional[str], model_option()]
Quant = Annotated[Optional[QuantChoice], quant_option()]
Device = Annotated[Optional[DeviceChoice], device_option()]

# --- video sampling ----------------------------------------------------------------------


def fps_option(*, default: float = D.FPS, panel: str = SAMPLING_PANEL):
    return _option("--fps", panel=panel, help=f"Frames sampled per second of video (default {default:g}).")


def max_frames_option(*, default: int = D.MAX_FRAMES, panel: str = SAMPLING_PANEL):
    return _option("--max-frames", panel=panel,
                   help=f"Upper bound on frames per video; long videos are sampled more sparsely (default {default}).")


Fps = Annotated[Optional[float], fps_option()]
MaxFrames = Annotated[Optional[int], max_frames_option()]
SegmentSize = Annotated[
    Optional[int],
    _option("--segment-size", panel=SAMPLING_PANEL, help=f"Frames per slow-fast segment (default {D.SEGMENT_SIZE})."),
]

# --- generation ----------------------------------------------------------------------------

MaxNewTokens = Annotated[
    Optional[int],
    _option("--max-new-tokens", panel=GENERATION_PANEL, help=f"Longest answer, in tokens (default {D.MAX_NEW_TOKENS})."),
]
Temperature = Annotated[
    Optional[float],
    _option("--temperature", "-t", panel=GENERATION_PANEL,
            help=f"Sampling temperature; 0 is greedy and deterministic (default {D.TEMPERATURE:g})."),
]


BatchSize = Annotated[
    Optional[str],
    _option("--batch-size", "-b", panel=GENERATION_PANEL, metavar="N",
            help=f"Answers generated together; videos are decoded ahead of them (default {D.BATCH_SIZE}: "
                 f"{D.BATCH_SIZE_CUDA} on a GPU, {D.BATCH_SIZE_CPU} on the CPU)."),
]


def seed_option(*, panel: str = GENERATION_PANEL, help: str = "Random seed for sampling with temperature > 0."):
    return _option("--seed", panel=panel, help=help)


Seed = Annotated[Optional[int], seed_option()]

# --- output --------------------------------------------------------------------------------

Json = Annotated[
    bool,
    _option("--json", metavar="", panel=OUTPUT_PANEL, show_default=True,
            help="Print machine-readable JSON on stdout (no progress display)."),
]


def quiet_option(*, help: str = "No progress display and no notices on stderr; errors still show."):
    return _option("--quiet", "-q", metavar="", panel=OUTPUT_PANEL, show_default=True, help=help)


Quiet = Annotated[bool, quiet_option()]

# --- the app -------------------------------------------------------------------------------


class _PlainFlags:
    """typer lists an on/off flag's type as `<bool>` (`--help <bool>`) unless its metavar is set; a
    flag takes no value, so every flag of a command, typer's own `--help` included, gets an empty one."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_PlainFlags, typer.core.TyperCommand):
    pass


class _Group(_PlainFlags, typer.core.TyperGroup):
    pass


class App(typer.Typer):
    """`typer.Typer` whose commands and groups show their flags (`--help` too) without a type."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)
