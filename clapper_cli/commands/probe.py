"""`clapper probe VIDEO`: the video's metadata and the frames the model would see; no model loaded.

Module level imports only typer and the shared options; PyAV and rich load in the command body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper probe clip.mp4[/cyan]                        [dim]# metadata, sampled times, segments, visual tokens[/dim]
  [cyan]clapper probe clip.mp4 --fps 2 --max-frames 64[/cyan]
  [cyan]clapper probe clip.mp4 --sheet sheet.png[/cyan]      [dim]# the sampled frames in a grid, keyframes outlined[/dim]
  [cyan]clapper probe clip.mp4 --json | jq .sampling.visual_tokens[/cyan]
  [cyan]clapper probe clip.mp4 -m ./checkpoints/clapper-7b[/cyan]  [dim]# tokens as that model counts them[/dim]
"""


def probe(
    video: Annotated[Path, typer.Argument(help="A video or image file.", show_default=False, metavar="VIDEO")],
    model: opt.Model = None,
    fps: opt.Fps = None,
    max_frames: opt.MaxFrames = None,
    num_frames: Annotated[
        Optional[int],
        typer.Option("--num-frames", help="Sample exactly this many frames, spread evenly (overrides --fps).",
                     show_default=False, rich_help_panel=opt.SAMPLING_PANEL),
    ] = None,
    segment_size: opt.SegmentSize = None,
    seek: Annotated[
        opt.SeekChoice,
        typer.Option("--seek", case_sensitive=False, rich_help_panel=opt.SAMPLING_PANEL,
                     help="exact: the frame shown at each time; snap: the nearest keyframe (fast on long videos); "
                          "auto: snap only when sampled times are 2+ keyframe intervals apart."),
    ] = opt.SeekChoice(opt.D.SEEK),
    sheet: Annotated[
        Optional[Path],
        typer.Option("--sheet", metavar="OUT.png", rich_help_panel=opt.OUTPUT_PANEL, show_default=False,
                     help="Decode the sampled frames and write a contact sheet (keyframes outlined, times written)."),
    ] = None,
    json_output: opt.Json = False,
) -> None:
    """Show a video's metadata and sampling plan: frames, times, segments and the visual tokens the
    model (--model, or the configured one) will spend on it."""
    import dataclasses
    import sys

    from clapper_core.settings import resolve
    from clapper_core.video import inspect_video

    settings = resolve(dict(model=model, fps=fps, max_frames=max_frames, segment_size=segment_size))
    config = dataclasses.replace(settings.sampling_config(), num_frames=num_frames, seek=seek.value)
    report = inspect_video(video, config, model=settings.model, sheet=sheet)
    if report.model.assumed:
        print(f"Warning: {report.model.assumed}", file=sys.stderr)
    if json_output:
        import json

        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        _render(report)


def _render(report) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    info, data = report.info, report.to_dict()["sampling"]
    out = Console(highlight=False, soft_wrap=False)
    meta = Table.grid(padding=(0, 2))
    meta.add_row("[bold]file[/bold]", info.path)
    if info.kind == "image":
        meta.add_row("[bold]image[/bold]", f"{info.width}×{info.height} {info.codec}")
    else:
        meta.add_row("[bold]video[/bold]",
                     f"{info.width}×{info.height}, {info.native_fps:.3g} fps, {info.duration:.2f} s, "
                     f"{info.num_frames}{'' if info.num_frames_exact else ' (estimated)'} frames")
        meta.add_row("[bold]codec[/bold]",
                     f"{info.codec} {info.pix_fmt} ({info.bit_depth}-bit, range {info.color_range}) "
                     f"in {info.container}")
        extra = [f"video stream #{info.stream_index} ({info.video_streams} in the file)"]
        extra += ["rotated %d°" % info.rotation] if info.rotation else []
        extra += ["audio (ignored)"] if info.has_audio else []
        if info.keyframe_interval:
            extra.append(f"keyframe every {info.keyframe_interval:.3g} s")
        meta.add_row("[bold]stream[/bold]", ", ".join(extra))
    meta.add_row("[bold]sampling[/bold]",
                 f"{data['num_frames']} frames ({data['mode']}, {data['sample_fps']:.3g} per s, "
                 f"seek {data['seek']}) → {len(data['segments'])} segments, "
                 f"[bold]{data['visual_tokens']}[/bold] visual tokens")
    costs = report.model.costs
    meta.add_row("[bold]model[/bold]",
                 f"{report.model.name}: {costs.keyframe} keyframe + {costs.fast} fast tokens per segment"
                 + (" (assumed)" if report.model.assumed else ""))
    if report.sheet:
        meta.add_row("[bold]sheet[/bold]", str(report.sheet))
    out.print(meta)
    table = Table(title=None, show_edge=False, pad_edge=False)
    for name, justify in (("seg", "right"), ("span (s)", "left"), ("frames", "right"), ("sampled at (s)", "left"),
                          ("tokens", "right")):
        table.add_column(name, justify=justify)
    stamps = data["timestamps"]
    for seg in data["segments"]:
        times = " ".join(f"{t:.2f}" for t in stamps[seg["start"]:seg["stop"]])
        tokens = costs.segment(seg["num_frames"])
        table.add_row(str(seg["index"]), f"{seg['start_time']:.2f}–{seg['end_time']:.2f}", str(seg["num_frames"]),
                      times, str(tokens))
    out.print(table)
    for warning in data["warnings"]:
        print(f"Warning: {warning}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to `app`."""
    app.command("probe", epilog=EPILOG)(probe)
