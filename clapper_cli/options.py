"""Shared typer option aliases, defined once and imported by every command.

Model and sampling options default to `None`: `None` means "not given on the command line",
and `clapper_core.settings.resolve` then fills it from `CLAPPER_*` environment variables or
the config file. That keeps the precedence (flag > environment > file > built-in default)
in one place instead of in typer's own `envvar=` handling.

Usage in a command::

    from clapper_cli import options as opt

    def ask(video: ..., model: opt.Model = None, quant: opt.Quant = None, json_out: opt.Json = False): ...

This module imports only typer and the standard library: it is loaded for `--help` and
shell completion.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

MODEL_PANEL = "Model"
SAMPLING_PANEL = "Video sampling"
GENERATION_PANEL = "Generation"
OUTPUT_PANEL = "Output"


class QuantChoice(str, Enum):
    """Weight precision: `auto` picks bf16 on a GPU and fp32 on the CPU."""

    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"
    q4 = "4bit"


class DeviceChoice(str, Enum):
    auto = "auto"
    cuda = "cuda"
    cpu = "cpu"


def choice_value(value: Enum | str | None) -> str | None:
    """The plain string behind an Enum option value (or `None` when not given)."""
    return value.value if isinstance(value, Enum) else value


# --- model -----------------------------------------------------------------------------

Model = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        metavar="<name|dir>",
        help="Model: a local directory, a Hugging Face id, or [bold]clapper-demo[/bold] (the built-in demo).",
        show_default=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
Quant = Annotated[
    Optional[QuantChoice],
    typer.Option(
        "--quant",
        help="Weight precision (default: auto = bf16 on GPU, fp32 on CPU).",
        show_default=False,
        case_sensitive=False,
        rich_help_panel=MODEL_PANEL,
    ),
]
Device = Annotated[
    Optional[DeviceChoice],
    typer.Option(
        "--device",
        help="Where to run (default: auto = CUDA when available).",
        show_default=False,
        case_sensitive=False,
        rich_help_panel=MODEL_PANEL,
    ),
]

# --- video sampling ----------------------------------------------------------------------

Fps = Annotated[
    Optional[float],
    typer.Option(
        "--fps",
        help="Frames sampled per second of video (default 1).",
        show_default=False,
        rich_help_panel=SAMPLING_PANEL,
    ),
]
MaxFrames = Annotated[
    Optional[int],
    typer.Option(
        "--max-frames",
        help="Upper bound on frames per video; long videos are sampled more sparsely (default 96).",
        show_default=False,
        rich_help_panel=SAMPLING_PANEL,
    ),
]
SegmentSize = Annotated[
    Optional[int],
    typer.Option(
        "--segment-size",
        help="Frames per slow-fast segment (default 4).",
        show_default=False,
        rich_help_panel=SAMPLING_PANEL,
    ),
]

# --- generation ----------------------------------------------------------------------------

MaxNewTokens = Annotated[
    Optional[int],
    typer.Option(
        "--max-new-tokens",
        help="Longest answer, in tokens (default 256).",
        show_default=False,
        rich_help_panel=GENERATION_PANEL,
    ),
]
Temperature = Annotated[
    Optional[float],
    typer.Option(
        "--temperature",
        "-t",
        help="Sampling temperature; 0 is greedy and deterministic (default 0).",
        show_default=False,
        rich_help_panel=GENERATION_PANEL,
    ),
]
Seed = Annotated[
    Optional[int],
    typer.Option(
        "--seed",
        help="Random seed for sampling with temperature > 0.",
        show_default=False,
        rich_help_panel=GENERATION_PANEL,
    ),
]

# --- output --------------------------------------------------------------------------------

Json = Annotated[
    bool,
    typer.Option(
        "--json",
        metavar="",
        help="Print machine-readable JSON on stdout (no progress display).",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        metavar="",
        help="No progress display and no notices on stderr; errors still show.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
