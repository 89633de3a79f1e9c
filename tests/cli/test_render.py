"""The progress display: a smoothed ETA, a label column that keeps its width, tokens generated."""

import io

import pytest

from clapper_cli.render import NAME_WIDTH, Display, SmoothedEta, fit
from clapper_core.runner import Event


def test_eta_is_an_average_of_seconds_per_video_not_the_last_one():
    eta = SmoothedEta(10, now=0.0)
    assert eta.seconds_left(0.0) is None and str(eta).endswith("-:--")
    eta.done(1, now=10.0)  # the first video: 10 s
    assert eta.seconds_left(10.0) == pytest.approx(9 * 10)
    eta.done(2, now=50.0)  # a slow one (40 s) moves the average by alpha of the difference, not all of it
    assert eta.per_video == pytest.approx(0.3 * 40 + 0.7 * 10)
    assert eta.seconds_left(50.0) == pytest.approx(8 * 19)
    eta.done(3, now=50.5)  # then a quick one: the estimate dips, it does not fall to the quick one's time
    assert 8 * 5 < eta.seconds_left(50.5) < 7 * 19


def test_eta_counts_down_between_videos_but_not_past_the_videos_to_start():
    eta = SmoothedEta(4, done=1, now=100.0)  # resumed: 1 already done
    eta.restart(200.0)  # loading the model took 100 s: not a video's time
    eta.done(2, now=220.0)
    assert eta.per_video == pytest.approx(20)
    assert eta.seconds_left(225.0) == pytest.approx(2 * 20 - 5)
    assert eta.seconds_left(300.0) == pytest.approx(1 * 20)  # a slow video holds the estimate
    eta.done(4, now=240.0)  # two at once: 10 s each
    assert eta.per_video == pytest.approx(0.3 * 10 + 0.7 * 20) and eta.seconds_left(240.0) == 0.0


def test_eta_text():
    eta = SmoothedEta(100, now=0.0)
    assert eta.text(0.0) == str(eta) == "ETA -:--"
    eta.done(1, now=83.0)
    assert eta.text(83.0) == "ETA 2:16:57"  # 99 videos at 83 s
    eta.done(99, now=83.0 + 98 * 83)
    assert eta.text(eta._last) == "ETA 1:23" and eta.text(eta._last + 83.4) == "ETA 0:00"


def test_fit_keeps_the_width_and_the_extension():
    assert fit("a.mp4", 12) == "a.mp4"
    long = fit("a_very_long_recording_from_the_garden_camera.mp4", 20)
    assert len(long) == 20 and long.endswith("mera.mp4") and "…" in long and long.startswith("a_very")


def _rows(display: Display) -> list[str]:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=110, color_system=None).print(display._progress.make_tasks_table(display._progress.tasks))
    return out.getvalue().splitlines()


def test_progress_rows_show_tokens_and_keep_their_columns_whatever_the_name():
    from rich.console import Console

    display = Display(batch=True)
    display.live = True  # as on a terminal
    display._console = Console(file=io.StringIO(), width=110, force_terminal=True)
    try:
        display(Event("batch", total=3, skipped=0))
        display(Event("stage", stage="load"))
        display(Event("stage_done", stage="load", seconds=1.0))
        long = "a_very_long_recording_from_the_garden_camera_at_night.mp4"
        display(Event("stage", video=f"/videos/{long}", stage="decode"))
        decoding = _rows(display)
        display(Event("stage", video=f"/videos/{long}", stage="generate"))
        display(Event("tokens", video=f"/videos/{long}", index=5, total=64))
        long_rows = _rows(display)
        display(Event("video_done", video=f"/videos/{long}", index=1, total=3))
        display(Event("stage", video="/videos/b.mp4", stage="generate"))
        display(Event("tokens", video="/videos/b.mp4", index=12, total=64))
        short_rows = _rows(display)
    finally:
        display.stop()
    assert "0/?" not in decoding[1] and "tokens" not in decoding[1] and "decoding" in decoding[1]
    assert long_rows[0].startswith("videos") and "0/3" in long_rows[0] and "ETA -:--" in long_rows[0]
    assert fit(long, NAME_WIDTH) in long_rows[1] and "5/64 tokens" in long_rows[1]
    assert "1/3" in short_rows[0] and "12/64 tokens" in short_rows[1]
    # the stage label and the token count sit in the same columns for a long and a short name
    assert long_rows[1].index("generating") == short_rows[1].index("generating") == decoding[1].index("decoding")
    assert long_rows[1].index("tokens") == short_rows[1].index("tokens")


def test_the_engine_row_shows_speed_and_batch_and_the_summary_where_time_went():
    from rich.console import Console

    from clapper_core.batch_files import BatchSummary
    from clapper_core.engine import EngineStats

    stats = EngineStats(videos=6, rows=3, wait_s=1.0, encode_s=1.0, generate_s=2.0)
    stats.started -= 60.0  # six videos in a minute
    display = Display(batch=True)
    display.live = True
    display._console = Console(file=io.StringIO(), width=110, force_terminal=True)
    try:
        display(Event("batch", total=9, skipped=0))
        display(Event("engine", stats=stats))
        rows = _rows(display)
    finally:
        display.stop()
    assert rows[1].startswith("6.0 videos/min, 3 in batch")
    summary = BatchSummary(total=9, succeeded=6, seconds=60.0, engine=stats)
    assert "(6.0 videos/min; the model's time: decode wait 25%, encode 25%, generate 50%)" in summary.describe()
