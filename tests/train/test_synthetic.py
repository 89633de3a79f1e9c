"""The synthetic world: deterministic, decodable, and its time-only families hidden from the keyframe."""

from __future__ import annotations

import json
import random

import numpy as np

from clapper_core.synthetic import (
    FAMILIES,
    ONE_FRAME_FAMILIES,
    TIME_FAMILIES,
    WorldConfig,
    generate_dataset,
    normalize_answer,
    render_frames,
    sample_scene,
)
from clapper_core.synthetic.world import DIRECTIONS, Scene, corner_of, frames_at_one_fps


def test_same_seed_same_dataset(tmp_path):
    a = generate_dataset(tmp_path / "a", num_videos=4, seed=7)
    b = generate_dataset(tmp_path / "b", num_videos=4, seed=7)
    c = generate_dataset(tmp_path / "c", num_videos=4, seed=8)
    assert a.qa_file.read_text() == b.qa_file.read_text()
    assert a.train_file.read_text() == b.train_file.read_text()
    assert a.qa_file.read_text() != c.qa_file.read_text()
    assert (tmp_path / "a/videos/synth00002.mp4").read_bytes() == (tmp_path / "b/videos/synth00002.mp4").read_bytes()


def test_video_i_does_not_depend_on_how_many_are_written(tmp_path):
    few = generate_dataset(tmp_path / "few", num_videos=2, seed=1)
    many = generate_dataset(tmp_path / "many", num_videos=5, seed=1)
    assert _qa_rows(few) == [r for r in _qa_rows(many) if r["id"] in ("synth00000", "synth00001")]


def test_videos_decode_to_one_segment_of_four_frames_matching_the_render(synth_data):
    from clapper_core.video import SamplingConfig, load_clip

    clip = load_clip(synth_data.out_dir / "videos/synth00000.mp4", SamplingConfig())
    assert clip.num_frames == 4 and len(clip.segments) == 1
    scene = sample_scene(random.Random("clapper-synthetic:3:0"), WorldConfig())
    ref = frames_at_one_fps(scene)  # frames at 0.5, 1.5, 2.5, 3.5 s
    assert np.array_equal(ref, render_frames(scene)[[4, 12, 20, 28]])  # at 8 fps
    err = np.abs(clip.frames.astype(int) - ref.astype(int)).mean()
    assert err < 6, f"mean abs error {err:.1f}: the H.264 video drifts from the rendered frames"


def test_corner_of_names_the_quarter_a_corner_object_is_drawn_in():
    rng = random.Random(2)
    half = WorldConfig().size // 2
    for _ in range(30):
        scene = sample_scene(rng)
        for ob in scene.objects:
            if ob.role == "mover":
                continue
            alone = Scene(scene.config, (ob,))
            lit = frames_at_one_fps(alone).any(axis=(0, 3))  # (H, W): every pixel it covers in any second
            row, col = corner_of(scene, ob)
            quarter = lit[row * half : (row + 1) * half, col * half : (col + 1) * half]
            assert lit.any() and quarter.sum() == lit.sum(), (ob, row, col)


def test_question_files_and_llava_records(synth_data):
    rows = [json.loads(x) for x in synth_data.qa_file.read_text().splitlines()]
    assert {r["family"] for r in rows} <= set(FAMILIES)
    assert {"colour", "shape", "count", "direction"} <= {r["family"] for r in rows}
    rec = json.loads(synth_data.train_file.read_text().splitlines()[0])
    conv = rec["conversations"]
    assert conv[0]["from"] == "human" and conv[0]["value"].startswith("<video>\n")
    assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
    assert sum("<video>" in t["value"] for t in conv) == 1


def test_keyframe_does_not_show_direction_or_events():
    """Whatever the mover's direction, the first second renders the same frames."""
    rng = random.Random(0)
    for _ in range(20):
        scene = sample_scene(rng)
        first = [render_frames(_with_mover(scene, d))[:8] for d in DIRECTIONS]  # the whole first second
        assert all(np.array_equal(first[0], f) for f in first[1:])
        # and no event happens before the second block
        assert all(b >= 1 for ob in scene.objects for b, _ in ob.events())


def _with_mover(scene: Scene, direction: str) -> Scene:
    from dataclasses import replace

    objs = tuple(replace(o, direction=direction) if o.role == "mover" else o for o in scene.objects)
    return replace(scene, objects=objs)


def test_families_split_and_answers_normalise():
    assert set(ONE_FRAME_FAMILIES).isdisjoint(TIME_FAMILIES)
    assert normalize_answer(" Left. ") == "left"
    assert normalize_answer("It turned BLUE!") == "it turned blue"


def test_module_entry_point(tmp_path, capsys):
    from clapper_core.synthetic.__main__ import main

    assert main([str(tmp_path / "d"), "-n", "2", "--seed", "4"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("train.jsonl") and "Wrote 2 videos" in err


def test_one_record_per_question_by_default(tmp_path):
    s = generate_dataset(tmp_path, num_videos=3, seed=2)
    records = [json.loads(x) for x in s.train_file.read_text().splitlines()]
    assert len(records) == s.num_questions + 3  # and one caption record per video
    assert all(len(r["conversations"]) == 2 for r in records)


def test_a_multiple_choice_share_is_asked_as_clapper_eval_asks(tmp_path):
    """Lettered records use eval's prompt and the benchmark's options; the letter names the answer."""
    from clapper_core.eval.answers import INSTRUCTION, extract_choice
    from clapper_core.synthetic.questions import options_for, question_id

    s = generate_dataset(tmp_path, num_videos=12, seed=3, multiple_choice=0.5)
    qa = {}
    for row in map(json.loads, s.qa_file.read_text().splitlines()):
        qa.setdefault(row["id"], []).append(row)
    lettered = open_ended = 0
    for r in map(json.loads, s.train_file.read_text().splitlines()):
        prompt, answer = r["conversations"][0]["value"], r["conversations"][1]["value"]
        if INSTRUCTION not in prompt:
            open_ended += 1
            continue
        lettered += 1
        question = prompt.removeprefix("<video>\n").split("\n")[0]
        k, row = next((k, row) for k, row in enumerate(qa[r["id"]], start=1) if row["question"] == question)
        options, right = options_for(question_id(r["id"], k), row["family"], row["question"], row["answer"])
        assert extract_choice(answer, options) == right
        assert all(f"{'ABCD'[i]}. {o}" in prompt for i, o in enumerate(options))
    assert lettered > 10 and open_ended > 10
    assert generate_dataset(tmp_path / "none", num_videos=12, seed=3).num_questions == s.num_questions


def test_all_orders_adds_every_pair_both_ways_and_keeps_the_rest(tmp_path):
    """all_orders=True: each pair of events at different times, asked both ways, answered by the earlier event;
    every other question (and the video's own order question, with its id) as without it."""
    from clapper_core.synthetic.writer import make_video

    one = generate_dataset(tmp_path / "one", num_videos=20, seed=5)
    every = generate_dataset(tmp_path / "all", num_videos=20, seed=5, all_orders=True)

    def by_video(summary):
        rows = {}
        for line in summary.qa_file.read_text().splitlines():
            rows.setdefault(json.loads(line)["id"], []).append(json.loads(line))
        return rows

    rows_one, rows_all = by_video(one), by_video(every)
    assert all(rows_all[vid][: len(rows)] == rows for vid, rows in rows_one.items())  # the same first, in order
    assert {f: n for f, n in every.family_counts.items() if f != "order"} == {
        f: n for f, n in one.family_counts.items() if f != "order"
    }
    assert every.family_counts["order"] > 2 * one.family_counts["order"]

    for i in range(20):
        scene = make_video(tmp_path / "check", i, seed=5).scene
        times = {}  # event phrase -> its block
        for ob in scene.objects:
            for block, what in ob.events():
                phrase = f"the {ob.shape} " + (f"turned {ob.colours[block]}" if what == "changed colour" else what)
                times.setdefault(phrase, []).append(block)
        orders = [r for r in rows_all[f"synth{i:05d}"] if r["family"] == "order"]
        assert len({r["question"] for r in orders}) == len(orders)  # no question twice
        for r in orders:
            a, b = r["question"].removeprefix("Which happened first, ").removesuffix("?").split(" or ")
            assert f"Which happened first, {b} or {a}?" in {o["question"] for o in orders}  # both ways
            assert len(times[a]) == len(times[b]) == 1 and times[a] != times[b]
            assert r["answer"] == (a if times[a][0] < times[b][0] else b)


def test_end_colours_ask_the_last_frames_colour_of_every_corner_object(tmp_path):
    """end_colours=True: one question per corner object visible at the end, answered by the colour the last
    rendered frame shows at the object's centre; the video's other questions stay as they were, ids included."""
    from clapper_core.synthetic import COLOURS, END_COLOUR
    from clapper_core.synthetic.questions import options_for
    from clapper_core.synthetic.writer import make_video

    plain = generate_dataset(tmp_path / "plain", num_videos=20, seed=9)
    ends = generate_dataset(tmp_path / "ends", num_videos=20, seed=9, end_colours=True)
    rows_plain, rows_ends = _qa_rows(plain), _qa_rows(ends)
    assert [r for r in rows_ends if r["family"] != END_COLOUR] == rows_plain
    changed = 0
    for i in range(20):
        scene = make_video(tmp_path / "check", i, seed=9).scene
        last = render_frames(scene)[-1]  # (H, W, 3)
        asked = {
            r["question"]: r["answer"] for r in rows_ends if r["id"] == f"synth{i:05d}" and r["family"] == END_COLOUR
        }
        want = [o for o in scene.objects if o.role != "mover" and o.visible[-1]]
        assert len(asked) == len(want)
        for ob in want:
            answer = asked[f"What colour is the {ob.shape} at the end?"]
            assert _centre(last, scene, ob) == COLOURS[answer]
            changed += answer != ob.start_colour
            options, right = options_for(f"t{i}", END_COLOUR, "q", answer)
            assert options[right] == answer and set(options) <= set(COLOURS)
    assert changed > 3  # some answers are not the first frame's colour


def test_all_changes_ask_of_every_object_with_at_most_one_event(tmp_path):
    """all_changes=True: "What happened to the X?" about every object there at the start that is not the mover
    and has at most one event, each answer what the frames show; the video's own questions keep their ids."""
    from clapper_core.synthetic import COLOURS
    from clapper_core.synthetic.writer import make_video

    plain = generate_dataset(tmp_path / "plain", num_videos=30, seed=4)
    every = generate_dataset(tmp_path / "every", num_videos=30, seed=4, all_changes=True)
    rows_plain, rows_every = _qa_rows(plain), _qa_rows(every)
    assert [r for r in rows_every if r not in rows_plain] and all(r in rows_every for r in rows_plain)
    assert {r["family"] for r in rows_every if r not in rows_plain} == {"change"}
    more = 0
    for i in range(30):
        scene = make_video(tmp_path / "check", i, seed=4).scene
        last = render_frames(scene)[-1]  # (H, W, 3)
        vid = f"synth{i:05d}"
        asked = {r["question"]: r["answer"] for r in rows_every if r["id"] == vid and r["family"] == "change"}
        want = [o for o in scene.at_start() if o.role != "mover" and len(o.events()) <= 1]
        assert sorted(asked) == sorted(f"What happened to the {ob.shape}?" for ob in want)
        more += len(asked) - sum(r["id"] == vid and r["family"] == "change" for r in rows_plain)
        for ob in want:
            centre = _centre(last, scene, ob)
            answer = asked[f"What happened to the {ob.shape}?"]
            if answer == "it disappeared":
                assert centre == (0, 0, 0)  # the background
            elif answer == "nothing changed":
                assert centre == COLOURS[ob.start_colour]
            else:
                assert centre == COLOURS[answer.removeprefix("it turned ")] != COLOURS[ob.start_colour]
    assert more >= 2  # a few videos have more than one object to ask of (4 of these 30 extra questions)


def _qa_rows(summary) -> list[dict]:
    return [json.loads(line) for line in summary.qa_file.read_text().splitlines()]


def _centre(frame: np.ndarray, scene: Scene, ob) -> tuple:
    """The (R, G, B) that `frame` (H, W, 3) shows at the centre of `scene`'s object `ob`."""
    o = scene.config.object_size
    return tuple(frame[int(ob.y + o / 2), int(ob.x + o / 2)])


def test_caption_prompts_ask_each_caption_in_several_ways(tmp_path):
    """caption_prompts=True: each caption record is asked with one of CAPTION_PROMPTS, the answer unchanged;
    without it, always the caption prompt. The question records are the same either way."""
    from clapper_core.synthetic import CAPTION_PROMPT, CAPTION_PROMPTS

    def split(summary):
        captions, questions = {}, []
        for r in map(json.loads, summary.train_file.read_text().splitlines()):
            prompt, answer = r["conversations"][0]["value"].removeprefix("<video>\n"), r["conversations"][1]["value"]
            if prompt in CAPTION_PROMPTS:
                captions[r["id"]] = (prompt, answer)
            else:
                questions.append((r["id"], prompt, answer))
        return captions, sorted(questions)

    one, q_one = split(generate_dataset(tmp_path / "one", num_videos=40, seed=4))
    many, q_many = split(generate_dataset(tmp_path / "many", num_videos=40, seed=4, caption_prompts=True))
    assert len(one) == len(many) == 40 and q_one == q_many
    assert {p for p, _ in one.values()} == {CAPTION_PROMPT}
    assert len({p for p, _ in many.values()}) >= 6
    assert all(many[v][1] == one[v][1] for v in one)  # the same caption, whichever way it is asked
