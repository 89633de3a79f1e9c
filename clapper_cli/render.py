"""What the user sees on stderr while a job runs: notices, a rich progress display, timings.

The display is on only when stderr is a terminal and neither `--quiet` nor `--json` was
given; rich is imported only then. Answers never pass through here: they go to stdout.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from clapper_core.records import Record
from clapper_core.runner import Event

STAGE_LABELS = {
    "load": "loading model",
    "decode": "decoding",
    "encode": "encoding",
    "generate": "generating",
}


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class Display:
    """Receives `clapper_core.runner.Event`s and draws them on stderr.

    `live=True` shows the rich progress display; `quiet=True` also silences notices and
    timings (errors are printed by `clapper_cli.main`, never here).
    """

    def __init__(self, *, quiet: bool = False, json_output: bool = False, batch: bool = False) -> None:
        self.quiet = quiet
        self.live = stderr_is_terminal() and not quiet and not json_output
        self.batch = batch
        self._progress: Any = None
        self._overall: Any = None
        self._stage_task: Any = None
        self._status: Any = None
        self._console: Any = None

    # -- plain lines ----------------------------------------------------------------------

    def notice(self, message: str) -> None:
        if self.quiet:
            return
        if self._console is not None:
            self._console.print(f"[yellow]{_escape(message)}[/yellow]", highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def info(self, message: str) -> None:
        if self.quiet:
            return
        if self._console is not None:
            self._console.print(f"[dim]{_escape(message)}[/dim]", highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    # -- the event protocol ------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if event.kind == "notice" and event.message:
            self.notice(event.message)
        elif event.kind == "video_done" and event.record is not None and not event.record.ok:
            error = event.record.error or ""
            self.notice(
                f"failed: {error}" if event.video and event.video in error else f"failed: {event.video}: {error}"
            )
        if not self.live or event.kind == "notice":
            return
        if self.batch:
            self._batch_event(event)
        else:
            self._single_event(event)

    def _single_event(self, event: Event) -> None:
        """`ask`: a spinner through load, decode and encode, gone before the answer streams."""
        if event.kind == "stage" and event.stage != "generate":
            label = STAGE_LABELS.get(event.stage or "", event.stage)
            if self._status is None:
                self._status = self._console_obj().status(f"{label}…", spinner="dots")
                self._status.start()
            else:
                self._status.update(f"{label}…")
        elif event.kind == "stage" and event.stage == "generate":
            self.stop()

    def _batch_event(self, event: Event) -> None:
        """`caption`: videos done / total with ETA, and the current file's stage."""
        if event.kind == "batch":
            self._start_progress(event.total, event.skipped)
        elif self._progress is None:
            return
        elif event.kind == "stage":
            name = os.path.basename(event.video) if event.video else "model"
            label = STAGE_LABELS.get(event.stage or "", event.stage)
            self._progress.update(self._stage_task, description=f"[dim]{_escape(name)}: {label}…[/dim]")
        elif event.kind == "video_done":
            self._progress.update(self._overall, completed=event.index)

    def _console_obj(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def _start_progress(self, total: int, skipped: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console_obj(),
            transient=True,
            redirect_stdout=sys.stdout.isatty(),  # captions printed to a terminal go above the bar
            redirect_stderr=False,
        )
        self._overall = self._progress.add_task("videos", total=total, completed=skipped)
        self._stage_task = self._progress.add_task("", total=None)
        self._progress.start()

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "Display":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- after a job ----------------------------------------------------------------------------

    def timings(self, record: Record) -> None:
        """One dim line on stderr: what the video cost and how long each stage took."""
        self.info(describe_timings(record))


def describe_timings(record: Record) -> str:
    t = record.timings
    parts = []
    if record.frames is not None:
        parts.append(f"{record.frames} frames")
    if record.visual_tokens is not None:
        parts.append(f"{record.visual_tokens} visual tokens")
    if record.device:
        parts.append(" ".join(filter(None, (record.device, record.precision))))
    for name, value in (("decode", t.decode_s), ("encode", t.encode_s), ("prefill", t.prefill_s),
                        ("generate", t.generate_s)):
        if value is not None:
            parts.append(f"{name} {value:.2f} s")
    if record.tokens_per_s:
        parts.append(f"{record.tokens_per_s:.1f} tokens/s")
    return " · ".join(parts)


def _escape(text: str) -> str:
    """Text shown through rich without its [markup] being interpreted."""
    return text.replace("[", "\\[")
