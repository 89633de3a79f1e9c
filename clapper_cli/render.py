"""What the user sees on stderr while a job runs: notices, a rich progress display, timings.

The display is on only when stderr is a terminal and neither `--quiet` nor `--json` was
given; rich is imported only then. Answers never pass through here: they go to stdout.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from clapper_core.records import Record
from clapper_core.runner import Event

STAGE_LABELS = {
    "load": "loading model",
    "decode": "decoding",
    "encode": "encoding",
    "generate": "generating",
}
# The progress display's columns are this wide whatever the file name, so the bars never move.
NAME_WIDTH = 28
STAGE_WIDTH = max(map(len, STAGE_LABELS.values())) + 1
COUNT_WIDTH = 16


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
        self._eta: SmoothedEta | None = None

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
        """`caption`: videos done / total with a smoothed ETA, and the current file's stage and tokens."""
        if event.kind == "batch":
            self._start_progress(event.total, event.skipped)
        elif self._progress is None:
            return
        elif event.kind == "stage":
            name = os.path.basename(event.video) if event.video else "model"
            self._progress.update(self._stage_task, description=f"[dim]{_escape(fit(name, NAME_WIDTH))}[/dim]",
                                  stage=STAGE_LABELS.get(event.stage or "", event.stage or ""),
                                  count="", total=None, completed=0)
        elif event.kind == "stage_done" and event.stage == "load":
            self._eta.restart(time.monotonic())  # loading the model is not a video's time
        elif event.kind == "tokens":
            self._progress.update(self._stage_task, total=event.total, completed=event.index,
                                  count=f"{event.index}/{event.total} tokens")
        elif event.kind == "engine" and event.stats is not None:
            self._progress.update(self._stage_task, description=f"[dim]{describe_engine(event.stats)}[/dim]",
                                  stage="", count="", total=None, completed=0)
        elif event.kind == "video_done":
            self._eta.done(event.index, time.monotonic())
            self._progress.update(self._overall, completed=event.index, count=f"{event.index}/{event.total}")

    def _console_obj(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def _start_progress(self, total: int, skipped: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        self._eta = SmoothedEta(total, done=skipped, now=time.monotonic())
        self._progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(width=NAME_WIDTH, no_wrap=True)),
            TextColumn("[dim]{task.fields[stage]}", table_column=Column(width=STAGE_WIDTH, no_wrap=True)),
            BarColumn(),
            TextColumn("{task.fields[count]}", justify="right", table_column=Column(width=COUNT_WIDTH)),
            # rich formats the field at every refresh, so the ETA counts down between videos
            TextColumn("{task.fields[eta]}", table_column=Column(width=10, no_wrap=True)),
            console=self._console_obj(),
            transient=True,
            redirect_stdout=sys.stdout.isatty(),  # captions printed to a terminal go above the bar
            redirect_stderr=False,
        )
        self._overall = self._progress.add_task("videos", total=total, completed=skipped, stage="",
                                                count=f"{skipped}/{total}", eta=self._eta)
        self._stage_task = self._progress.add_task("", total=None, stage="", count="", eta="")
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


class SmoothedEta:
    """The time a batch has left, from an exponential moving average of the seconds per video.

    The last video's time alone makes the estimate swing (a short clip after a long one); the
    average weighs each new video by `alpha`. Between videos the estimate counts down, but not
    past the videos still to start, so a slow video holds it rather than showing 0:00 early.
    `str()` is the text shown now: `ETA 1:23`, or `ETA -:--` before the first video is done.
    """

    def __init__(self, total: int, *, done: int = 0, now: float, alpha: float = 0.3) -> None:
        assert 0 < alpha <= 1
        self.total, self.count, self.alpha = total, done, alpha
        self.per_video: float | None = None
        self._last = now

    def restart(self, now: float) -> None:
        """Time from here on counts (after loading the model)."""
        self._last = now

    def done(self, count: int, now: float) -> None:
        """`count` videos are done (several may finish at once)."""
        if count <= self.count:
            return
        each = (now - self._last) / (count - self.count)
        self.per_video = each if self.per_video is None else self.alpha * each + (1 - self.alpha) * self.per_video
        self.count, self._last = count, now

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.per_video is None:
            return None
        left = self.total - self.count
        if left <= 0:
            return 0.0
        since = (time.monotonic() if now is None else now) - self._last
        return left * self.per_video - min(max(since, 0.0), self.per_video)

    def __str__(self) -> str:
        return self.text()

    def text(self, now: float | None = None) -> str:
        seconds = self.seconds_left(now)
        if seconds is None:
            return "ETA -:--"
        minutes, secs = divmod(round(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


def fit(name: str, width: int) -> str:
    """`name` cut to `width` characters with an ellipsis in the middle, keeping its end (the extension)."""
    if len(name) <= width:
        return name
    tail = min(8, (width - 1) // 2)
    return name[: width - 1 - tail] + "…" + name[len(name) - tail:]


def describe_engine(stats: Any) -> str:
    """The engine's speed and the answers in its batch, for the progress row (the summary says where time went)."""
    return fit(f"{stats.videos_per_min:.1f} videos/min, {stats.rows} in batch", NAME_WIDTH)


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
