import json
import time
from pathlib import Path

import pytest

from clapper_core import runner
from clapper_core.errors import ConfigError, DataError, VideoNotFoundError
from clapper_core.records import Record, validate
from clapper_core.settings import resolve
from tests.cli.conftest import corrupt_video
from tests.cli.fake_model import FakeSession, answer_for
from tests.fixtures.video import make_image, make_video


def test_find_videos_walks_in_a_stable_order(clip_tree):
    found = runner.find_videos([clip_tree])
    names = [Path(p).relative_to(clip_tree).as_posix() for p in found]
    assert names == ["a.mp4", "b.mp4", "sub/c.mkv", "sub/deeper/d.mp4"]
    # a file named directly comes first and is not repeated by its directory
    again = runner.find_videos([clip_tree / "sub" / "c.mkv", clip_tree])
    assert [Path(p).name for p in again] == ["c.mkv", "a.mp4", "b.mp4", "d.mp4"]
    with pytest.raises(VideoNotFoundError, match="no such file or directory"):
        runner.find_videos([clip_tree / "nope"])


def test_directory_walk_takes_images_as_one_frame_videos(tmp_path):
    root = tmp_path / "media"
    (root / "stills").mkdir(parents=True)
    make_video(root / "b.mp4", frames=10, fps=10)
    make_image(root / "a.PNG")
    make_image(root / "stills" / "c.jpg")
    make_image(root / "stills" / "d.webp")
    (root / "notes.txt").write_text("not media")
    names = [Path(p).relative_to(root).as_posix() for p in runner.find_videos([root])]
    assert names == ["a.PNG", "b.mp4", "stills/c.jpg", "stills/d.webp"]
    assert runner.find_videos([root]) == runner.find_videos([root])  # the same order every time


def test_caption_batch_captions_images_found_in_a_directory(fake_model, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    make_image(root / "still.png")
    make_video(root / "clip.mp4", frames=10, fps=10)
    records = []
    summary = runner.caption_batch([root], resolve({"fps": 10}), on_event=lambda e: records.append(e.record)
                                   if e.kind == "video_done" else None)
    assert summary.ok and summary.succeeded == 2
    assert [Path(r.video).name for r in records] == ["clip.mp4", "still.png"]
    assert records[0].frames > 1 and records[1].frames == 1


def test_first_piece_loses_its_leading_space():
    assert list(runner.without_leading_space([" ", "\n A", " red", " square"])) == ["A", " red", " square"]
    assert list(runner.without_leading_space(["Saw", " 3"])) == ["Saw", " 3"]
    assert list(runner.without_leading_space([])) == []


def test_answer_and_record_start_without_a_space(fake_model, tiny_video, monkeypatch):
    stream = FakeSession.stream
    monkeypatch.setattr(FakeSession, "stream", _with_space(stream))
    items = list(runner.ask(tiny_video, ["what?"], resolve()))
    assert items[0] == "Saw" and items[-1].answer == answer_for("what?", items[-1].frames)


def _with_space(stream):
    def spaced(self, question, gen=None, **kw):
        for i, piece in enumerate(stream(self, question, gen, **kw)):
            yield " " + piece if i == 0 else piece
    return spaced


def test_generation_reports_tokens_as_they_come(fake_model, tiny_video):
    events = []
    *_, record = runner.ask(tiny_video, ["what?"], resolve({"max_new_tokens": 50}), on_event=events.append)
    tokens = [(e.index, e.total) for e in events if e.kind == "tokens"]
    n = len(record.answer.split(" "))  # the stand-in model yields one word per piece
    assert tokens == [(i, 50) for i in range(1, n + 1)]


def test_ask_streams_pieces_then_a_record_per_question(fake_model, tiny_video):
    events = []
    items = list(runner.ask(tiny_video, ["what?", "and then?"], resolve(), on_event=events.append))
    records = [i for i in items if isinstance(i, Record)]
    assert len(records) == 2 and all(validate(json.loads(r.to_json())) == [] for r in records)
    first = "".join(i for i in items[: items.index(records[0])])
    assert first == records[0].answer == answer_for("what?", records[0].frames)
    stages = [(e.kind, e.stage) for e in events if e.kind.startswith("stage")]
    # the video is decoded and encoded once for both questions
    assert stages.count(("stage", "decode")) == 1 and stages.count(("stage", "encode")) == 1
    assert stages.count(("stage", "generate")) == 2
    assert stages[:2] == [("stage", "load"), ("stage_done", "load")]
    assert any(e.kind == "notice" and "demo model" in e.message for e in events)


def test_ask_errors(fake_model, tmp_path, tiny_video):
    with pytest.raises(VideoNotFoundError, match="no such file"):
        list(runner.ask(tmp_path / "missing.mp4", ["q"], resolve()))
    with pytest.raises(ConfigError, match="no question"):
        list(runner.ask(tiny_video, [], resolve()))


def test_caption_batch_appends_resumes_and_records_failures(fake_model, clip_tree, tmp_path):
    bad = corrupt_video(tmp_path / "in" / "broken.mp4")
    out = tmp_path / "captions.jsonl"
    done = []
    summary = runner.caption_batch([clip_tree, bad], resolve(), output=out,
                                   on_event=lambda e: done.append(e) if e.kind == "video_done" else None)
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (5, 4, 1, 0)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(o["video"]).name for o in lines] == ["a.mp4", "b.mp4", "c.mkv", "d.mp4", "broken.mp4"]
    assert all(validate(o) == [] for o in lines)
    assert lines[-1]["error_type"] == "NotAVideoError" and lines[-1]["answer"] is None
    assert [e.index for e in done] == [1, 2, 3, 4, 5]

    again = runner.caption_batch([clip_tree, bad], resolve(), output=out)
    assert (again.succeeded, again.failed, again.skipped, again.failed_before) == (0, 0, 5, 1)
    assert not again.ok and "1 video failed in an earlier run" in again.describe()
    assert "--retry-failed" in again.describe()
    assert len(out.read_text().splitlines()) == 5
    others = runner.caption_batch([clip_tree], resolve(), output=out)  # the failed video not asked for
    assert others.ok and (others.skipped, others.failed_before) == (4, 0)

    retried = runner.caption_batch([clip_tree, bad], resolve(), output=out, retry_failed=True)
    assert (retried.failed, retried.skipped, retried.failed_before) == (1, 4, 0)
    assert len(out.read_text().splitlines()) == 5

    fresh = runner.caption_batch([clip_tree], resolve({"prompt": "List objects."}), output=out, overwrite=True)
    assert fresh.succeeded == 4
    assert {json.loads(line)["question"] for line in out.read_text().splitlines()} == {"List objects."}


def test_caption_resume_cuts_a_torn_last_line(fake_model, clip_tree, tmp_path):
    out = tmp_path / "captions.jsonl"
    runner.caption_batch([clip_tree / "a.mp4", clip_tree / "b.mp4"], resolve(), output=out)
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:40])  # killed while writing the second line
    summary = runner.caption_batch([clip_tree / "a.mp4", clip_tree / "b.mp4"], resolve(), output=out)
    assert (summary.skipped, summary.succeeded) == (1, 1)
    assert [json.loads(line)["video"] for line in out.read_text().splitlines()] == [
        str(clip_tree / "a.mp4"), str(clip_tree / "b.mp4")]


def test_caption_batch_errors(fake_model, tmp_path, clip_tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video or image files found"):
        runner.caption_batch([tmp_path / "empty"], resolve())
    with pytest.raises(ConfigError, match="is a directory"):
        runner.caption_batch([clip_tree], resolve(), output=tmp_path)


def test_caption_batch_shards_under_torchrun(fake_model, clip_tree, tmp_path, monkeypatch):
    out = tmp_path / "captions.jsonl"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "t1")
    monkeypatch.setenv("CLAPPER_DEVICE", "cpu")
    # rank 1 first: it writes its part and returns; rank 0 then merges both parts
    monkeypatch.setenv("RANK", "1")
    one = runner.caption_batch([clip_tree], resolve(), output=out)
    monkeypatch.setenv("RANK", "0")
    zero = runner.caption_batch([clip_tree], resolve(), output=out)
    assert one.succeeded + zero.succeeded == 4
    names = [Path(json.loads(line)["video"]).name for line in out.read_text().splitlines()]
    assert names == ["a.mp4", "b.mp4", "c.mkv", "d.mp4"]  # the order one process would have written
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    alone = runner.caption_batch([clip_tree], resolve(), output=tmp_path / "single.jsonl")
    assert (tmp_path / "single.jsonl").read_text().count("\n") == 4 and alone.succeeded == 4


def test_ctrl_c_keeps_answers_that_finished_before_an_earlier_video(fake_model, clip_tree, tmp_path, monkeypatch):
    """The output keeps the input order, but an interrupt must not lose an answer waiting for an earlier one."""
    from tests.cli.fake_model import FakeBackend

    class FirstStalls(FakeBackend):
        steps = 0

        def step(self):
            FirstStalls.steps += 1
            if FirstStalls.steps > 60:
                raise KeyboardInterrupt
            time.sleep(0.02)  # a step takes time, so the other videos are decoded and join
            for row in self.running:  # the first video's answer never ends
                if row[0] == (0, 0):
                    row[2] = -10**6
            return super().step()

    monkeypatch.setattr(runner, "_open_backend", FirstStalls)
    out = tmp_path / "captions.jsonl"
    with pytest.raises(runner.BatchInterrupted) as interrupted:
        runner.caption_batch([clip_tree], resolve({"batch_size": 4}), output=out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(o["video"]).name for o in lines] == ["b.mp4", "c.mkv", "d.mp4"]  # a.mp4 was still answering
    assert interrupted.value.summary.saved == 3
    monkeypatch.setattr(runner, "_open_backend", FakeBackend)
    again = runner.caption_batch([clip_tree], resolve({"batch_size": 4}), output=out)
    assert (again.skipped, again.succeeded) == (3, 1)


def test_records_are_handed_on_in_input_order_when_a_later_video_finishes_first(fake_model, clip_tree, monkeypatch):
    from tests.cli.fake_model import FakeBackend

    class FirstIsSlow(FakeBackend):
        slowed = False

        def step(self):
            time.sleep(0.02)  # the other videos are decoded and join while the first one answers
            for row in self.running:
                if row[0] == (0, 0) and not self.slowed:
                    row[2], self.slowed = -20, True  # the first video's answer takes 20 more steps
            return super().step()

    monkeypatch.setattr(runner, "_open_backend", FirstIsSlow)
    events = []
    runner.caption_batch([clip_tree], resolve({"batch_size": 4}), on_event=events.append)
    finished = [Path(e.video).name for e in events if e.kind == "video_done"]
    handed_on = [Path(e.video).name for e in events if e.kind == "record"]
    assert finished[-1] == "a.mp4" and handed_on == ["a.mp4", "b.mp4", "c.mkv", "d.mp4"]
