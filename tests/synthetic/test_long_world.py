"""The long world: videos of several segments whose event times, read back from the decoded video at 1 fps, are
the ones its questions answer with; and the one-segment world exactly as it was before it."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import replace

import numpy as np
import pytest

from clapper_core.synthetic import COLOURS, WorldConfig, generate_dataset, make_video, render_frames, sample_scene
from clapper_core.synthetic.questions import order_events
from clapper_core.synthetic.world import DIRECTIONS, SPEEDS

LONG = WorldConfig(segments=(2, 8))
VIDEOS = 12


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    """(SyntheticVideo, frames decoded at 1 fps by the project's decoder) of 12 videos of 2 to 8 segments."""
    from clapper_core.video import SamplingConfig, load_clip

    out = tmp_path_factory.mktemp("long")
    videos = [make_video(out, i, seed=7, config=LONG) for i in range(VIDEOS)]
    return [(v, load_clip(v.path, SamplingConfig()).frames) for v in videos]


# --- reading the decoded frames -----------------------------------------------------------------


def _colour_at(frame: np.ndarray, x: float, y: float, o: int) -> str | None:
    """The colour name of the 3x3 pixels at the centre of the box at (x, y), None for the black background."""
    cx, cy = int(x + o / 2), int(y + o / 2)
    rgb = frame[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(0)  # (3,)
    names = [None, *COLOURS]
    refs = np.array([(0, 0, 0), *COLOURS.values()], dtype=float)  # (6, 3)
    dist = np.linalg.norm(refs - rgb, axis=1)
    assert dist.min() < 60, f"no colour near {rgb} at ({cx}, {cy})"
    return names[int(dist.argmin())]


def _seen(video, frames) -> dict[str, list[str | None]]:
    """Each corner object's colour (None: not there) in each decoded second, by shape."""
    o = video.scene.config.object_size
    return {ob.shape: [_colour_at(f, ob.x, ob.y, o) for f in frames] for ob in video.scene.objects
            if ob.role != "mover"}


def _seen_events(states: dict[str, list[str | None]]) -> list[tuple[int, str, str]]:
    """(second, shape, what) of every change between consecutive decoded seconds: 'appear', 'disappear' or
    'turn <colour>'."""
    out = []
    for shape, seq in states.items():
        for t in range(1, len(seq)):
            if seq[t] != seq[t - 1]:
                what = "appear" if seq[t - 1] is None else "disappear" if seq[t] is None else f"turn {seq[t]}"
                out.append((t, shape, what))
    return out


def _mover_centroids(video, frames) -> np.ndarray:
    """(seconds, 2) x, y centroid of the mover's colour inside the box its whole path covers (corner objects stay
    clear of it)."""
    scene, mover = video.scene, video.scene.mover
    o, end = scene.config.object_size, scene.config.seconds
    (x0, y0), (x1, y1) = mover.position(0, scene.config.size, end), mover.position(end, scene.config.size, end)
    box = (slice(int(min(y0, y1)), int(max(y0, y1)) + o + 1), slice(int(min(x0, x1)), int(max(x0, x1)) + o + 1))
    near = np.linalg.norm(frames[:, box[0], box[1]].astype(float) - COLOURS[mover.start_colour], axis=-1) < 80
    ys, xs = np.mgrid[box[0], box[1]]  # (h, w) each
    return np.stack([(near * xs).sum((1, 2)) / near.sum((1, 2)), (near * ys).sum((1, 2)) / near.sum((1, 2))], 1)


def _qas(video, family: str):
    return [qa for qa in video.qas if qa.family == family]


# --- the ground truth ---------------------------------------------------------------------------


def test_long_videos_last_their_segments_and_decode_to_one_frame_a_second(long_videos):
    from clapper_core.video import SamplingConfig, load_clip

    counts = set()
    for video, frames in long_videos:
        k = video.scene.num_segments
        counts.add(k)
        assert 2 <= k <= 8 and video.scene.config.seconds == 4 * k and len(frames) == 4 * k
    assert len(counts) >= 3, counts
    video, _ = next((v, f) for v, f in long_videos if v.scene.num_segments >= 3)
    clip = load_clip(video.path, SamplingConfig())
    starts = [s.start_time for s in clip.segments]
    assert starts == [4.0 * i for i in range(video.scene.num_segments)]  # "[0.0s]", "[4.0s]", ... in the prompt


def test_every_decoded_second_shows_each_object_as_the_scene_says(long_videos):
    for video, frames in long_videos:
        states = _seen(video, frames)
        for ob in video.scene.objects:
            if ob.role != "mover":
                want = [c if v else None for c, v in zip(ob.colours, ob.visible)]
                assert states[ob.shape] == want, (video.id, ob)


def test_the_mover_starts_at_its_second_and_moves_one_segment_less_a_second(long_videos):
    starts = set()
    for video, frames in long_videos:
        mover, size = video.scene.mover, video.scene.config.size
        s0 = mover.move_start
        starts.add(s0)
        xy = _mover_centroids(video, frames)  # (seconds, 2)
        dx, dy = DIRECTIONS[mover.direction]
        along = xy @ np.array([dx, dy], dtype=float)  # (seconds,)
        assert np.ptp(along[:s0]) < 0.3, (video.id, along)  # still until its start...
        step = SPEEDS[mover.speed] * size / 3 / 2  # half a second's moving at the one-segment speed
        assert along[s0] - along[s0 - 1] > step - 1, (video.id, along)  # ...moving in the second after it...
        after = along[s0 + 3 :]  # the seconds after it has moved 3 s (none where it starts 3 s before the end)
        assert after.size == 0 or np.ptp(after) < 0.3, (video.id, along)  # ...and still again
    assert len(starts) >= 3, "the mover starts at a second drawn per video"


def test_when_answers_are_the_second_the_decoded_video_shows_the_event(long_videos):
    asked = set()
    for video, frames in long_videos:
        seen = _seen_events(_seen(video, frames))
        for qa in _qas(video, "when"):
            t = int(re.fullmatch(r"at (\d+)s", qa.answer).group(1))
            m = re.fullmatch(r"When does the (?:(\w+) )?(\w+) (appear|disappear|turn \w+|start moving)\?", qa.question)
            colour, shape, what = m.groups()
            asked.add(what.split()[0])
            if what == "start moving":
                along = _mover_centroids(video, frames) @ np.array(DIRECTIONS[video.scene.mover.direction], float)
                assert shape == video.scene.mover.shape and np.ptp(along[:t]) < 0.3 < along[t] - along[t - 1]
                continue
            assert [e for e in seen if e[1:] == (shape, what)] == [(t, shape, what)], (video.id, qa, seen)
            if colour is not None:  # "the red circle appear": red in the second it is there
                assert _seen(video, frames)[shape][t if what == "appear" else t - 1] == colour
    assert asked >= {"appear", "disappear", "turn", "start"}, asked


def test_order_questions_pair_events_in_different_segments_and_name_the_first(long_videos):
    asked = 0
    for video, frames in long_videos:
        seen = {f"the {shape} {_past(what)}": t for t, shape, what in _seen_events(_seen(video, frames))}
        for qa in _qas(video, "order"):
            a, b = order_events(qa.question)
            assert a in seen and b in seen, (qa, seen)
            assert seen[a] // 4 != seen[b] // 4, f"{qa.question}: both in one segment"
            assert qa.answer == (a if seen[a] < seen[b] else b)
            asked += 1
    assert asked >= 4


def _past(what: str) -> str:
    return {"appear": "appeared", "disappear": "disappeared"}.get(what, what.replace("turn", "turned"))


def test_times_and_net_change_answer_what_the_whole_decoded_video_shows(long_videos):
    asked = set()
    for video, frames in long_videos:
        states = _seen(video, frames)
        for qa in _qas(video, "times"):
            shape = qa.question.split()[5]  # "How many times does the X change colour?"
            seq = states[shape]
            assert qa.answer == str(sum(a != b for a, b in zip(seq, seq[1:])))
            asked.add("times")
        for qa in _qas(video, "net change"):
            seq = states[qa.question.split()[4]]  # "What changed about the X between ..."
            want = ("it disappeared" if seq[-1] is None else f"it turned {seq[-1]}" if seq[-1] != seq[0]
                    else "nothing changed")
            assert qa.answer == want, (video.id, qa, seq)
            asked.add("net change")
    assert asked == {"times", "net change"}


# --- the world's config, and the one-segment world unchanged ------------------------------------


@pytest.mark.parametrize("segments", [(0, 3), (4, 2)])
def test_segments_must_be_fewest_then_most(segments):
    with pytest.raises(ValueError, match="segments="):
        WorldConfig(segments=segments)


def test_a_long_video_of_one_segment_renders_as_the_one_segment_world_would():
    rng = random.Random(9)
    for _ in range(10):
        scene = sample_scene(rng, WorldConfig(segments=(1, 1)))
        assert scene.config.seconds == 4 and scene.mover.move_start == 1
        plain = replace(scene, segment_seconds=None,
                        objects=tuple(replace(o, move_seconds=None) for o in scene.objects))
        assert np.array_equal(render_frames(scene), render_frames(plain))


def test_the_one_segment_world_is_exactly_what_it_was(tmp_path):
    """Pinned before the long world was added: the default world's questions, records and frames."""
    summary = generate_dataset(tmp_path, num_videos=6, seed=11, all_orders=True, caption_prompts=True)
    assert _sha(summary.qa_file.read_bytes()) == "a66f1245622e22099c6aa5064208aa22920730a84a0d5f5a68428548ef52db9d"
    assert _sha(summary.train_file.read_bytes()) == "3bb2d67382f580d09985898e37c8757845827028138d1f200ee2f52b47bc458a"
    for config, n, want in ((WorldConfig(), 6, "bd9d16d2c91924ab56b9655cc6592f8986ef9a7405121cb0e8203a0d835454e5"),
                            (WorldConfig(seconds=6, fps=4), 3,
                             "d94320c06e1d93b4301c5245f58556985907aa7859aef3a8dbfd0cffaa875e1f")):
        rng = random.Random(5)
        assert _sha(b"".join(render_frames(sample_scene(rng, config)).tobytes() for _ in range(n))) == want


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_long_qa_rows_say_how_long_their_video_is(tmp_path):
    import json

    summary = generate_dataset(tmp_path, num_videos=3, seed=1, config=WorldConfig(segments=(1, 8)))
    rows = [json.loads(line) for line in summary.qa_file.read_text().splitlines()]
    assert all(r["seconds"] == 4 * r["segments"] for r in rows)
    assert {"when", "net change"} <= {r["family"] for r in rows}
