"""Questions, answers and captions about a scene.

Question families come in two kinds. One-frame families (colour, shape, count) are answered by
the first frame alone. Time-only families (direction, order, change, times) ask about what happens
after the first frame, so the first frame of a segment (its keyframe) cannot answer them: the mover
starts at the centre whatever its direction, and every event happens after the first second.
Answers are short and closed (a word, a number or a phrase from a small set), so scoring is an
exact match after `normalize_answer`.

Scenes of the long world (several segments, `WorldConfig.segments`) get two more time families (TIMELINE_FAMILIES):
"when" ("When does the red circle appear?" "at 13s", right within WHEN_TOLERANCE_S, one segment, of the truth) and
"net change" (what differs between the first and the last second); their order questions pair events in different
segments, and their captions say when things happen.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from clapper_core.defaults import CAPTION_PROMPT  # `clapper caption`'s default: captions are trained on it
from clapper_core.synthetic.world import COLOURS, DIRECTIONS, SHAPES, Scene, SceneObject

ONE_FRAME_FAMILIES: tuple[str, ...] = ("colour", "shape", "count")
TIME_FAMILIES: tuple[str, ...] = ("direction", "order", "change", "times")
FAMILIES: tuple[str, ...] = ONE_FRAME_FAMILIES + TIME_FAMILIES
WHEN = "when"
NET_CHANGE = "net change"
TIMELINE_FAMILIES: tuple[str, ...] = (WHEN, NET_CHANGE)  # asked of the long world's scenes only
LONG_TIME_FAMILIES: tuple[str, ...] = TIME_FAMILIES + TIMELINE_FAMILIES
LONG_FAMILIES: tuple[str, ...] = FAMILIES + TIMELINE_FAMILIES
WHEN_TOLERANCE_S = 4.0  # a when answer is right this close to the truth: one segment at 1 fps
# Other ways a user asks for the same description (`clapper ask video.mp4 "what happens?"`): with
# caption_prompts=True a training caption is asked with one of these, CAPTION_PROMPT included
# (the tokenizer tells "What" from "what": both are here).
CAPTION_PROMPTS: tuple[str, ...] = (
    CAPTION_PROMPT,
    "Describe this video.",
    "Describe the video.",
    "Describe what you see.",
    "What happens in this video?",
    "What happens in the video?",
    "What happens?",
    "what happens?",
    "what happens in this video?",
    "What is going on in this video?",
    "What is happening?",
    "Summarize this video.",
)
END_COLOUR = "end colour"  # a training family (end_colours=True), not one of FAMILIES
NUM_OPTIONS = 4  # lettered options of a multiple-choice question


@dataclass(frozen=True)
class QA:
    family: str  # one of FAMILIES, or "caption"
    question: str
    answer: str

    @property
    def time_only(self) -> bool:
        return self.family in LONG_TIME_FAMILIES


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and extra spaces removed: 'Left.' -> 'left'."""
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def seconds_in(text: str) -> float | None:
    """The first number in a when answer, in seconds ('at 13s' -> 13.0, 'After 12.5 seconds.' -> 12.5); None
    when it holds none."""
    m = re.search(r"\d+(?:\.\d+)?", text)
    return float(m.group()) if m else None


def answer_right(family: str, answer: str, truth: str) -> bool:
    """Is `answer` right? A when answer within WHEN_TOLERANCE_S of the truth's time; any other the same words
    after `normalize_answer`."""
    if family == WHEN:
        got, want = seconds_in(answer), seconds_in(truth)
        assert want is not None, f"a when answer without a time: {truth!r}"
        return got is not None and abs(got - want) <= WHEN_TOLERANCE_S
    return normalize_answer(answer) == normalize_answer(truth)


def questions_for(scene: Scene, rng: random.Random) -> list[QA]:
    """One question of every family that the scene can answer, in FAMILIES order; a scene of the long world's
    then in LONG_FAMILIES order (see the module docstring)."""
    out: list[QA] = []
    start = scene.at_start()
    constant = [o for o in start if o.colour_changes == 0]  # its colour is one word for the whole video
    if constant:
        ob = rng.choice(constant)
        out.append(QA("colour", f"What colour is the {ob.shape}?", ob.start_colour))
        ob = rng.choice(constant)
        out.append(QA("shape", f"What shape is the {ob.start_colour} object?", ob.shape))
    out.append(QA("count", "How many shapes are there at the start?", str(len(start))))
    mover = scene.mover
    out.append(QA("direction", f"Which way does the {mover.shape} move?", mover.direction or ""))
    order = _order_question(scene, rng)
    if order is not None:
        out.append(order)
    # "change" and "times" are asked about objects visible at the start that do not move, whose
    # first frame looks the same whatever happens to them next.
    single = _change_subjects(start)
    if single:
        out.append(_change_qa(rng.choice(single)))
    counted = [o for o in start if o.role in ("static", "changer")]
    if counted:
        ob = rng.choice(counted)
        out.append(QA("times", f"How many times does the {ob.shape} change colour?", str(ob.colour_changes)))
    if scene.segment_seconds is not None:
        out += timeline_questions(scene, rng)
    return out


def timeline_questions(scene: Scene, rng: random.Random) -> list[QA]:
    """A when question about one event and a net change question about one object there at the start, where the
    scene has them."""
    out: list[QA] = []
    events = when_events(scene)
    if events:
        block, what = rng.choice(events)
        out.append(QA(WHEN, f"When does {what}?", when_answer(block)))
    subjects = [o for o in scene.at_start() if o.role != "mover"]
    if subjects:
        ob = rng.choice(subjects)
        out.append(QA(NET_CHANGE, f"What changed about the {ob.shape} between the start and the end?",
                      _net_change_answer(ob)))
    return out


def when_answer(block: int) -> str:
    return f"at {block}s"


def when_events(scene: Scene) -> list[tuple[int, str]]:
    """(second, what happens) of every event a when question may ask about, each worded so that it names one
    event: 'the red circle appear', 'the square turn blue', 'the triangle start moving'."""
    out: list[tuple[int, str]] = []
    mover = scene.mover
    if mover.move_seconds is not None:  # a mover of the long world starts at a drawn second
        out.append((mover.move_start, f"the {mover.shape} start moving"))
    for ob in scene.objects:
        for block, what in ob.events():
            if what == "appeared":
                out.append((block, f"the {ob.colours[block]} {ob.shape} appear"))
            elif what == "disappeared":
                out.append((block, f"the {ob.colours[block - 1]} {ob.shape} disappear"))
            else:
                out.append((block, f"the {ob.shape} turn {ob.colours[block]}"))
    return _unambiguous(out)


def _unambiguous(events: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (second, phrase) events whose phrase names one event only ("turned blue" twice would be ambiguous)."""
    phrases = [p for _, p in events]
    return [e for e in events if phrases.count(e[1]) == 1]


def _net_change_answer(ob: SceneObject) -> str:
    """How the object at the end differs from the object at the start, whatever happened in between."""
    if not ob.visible[-1]:
        return "it disappeared"
    if ob.colours[-1] != ob.colours[0]:
        return f"it turned {ob.colours[-1]}"
    return "nothing changed"


def all_change_questions(scene: Scene) -> list[QA]:
    """'What happened to the X?' about every object the change family may ask of, where `questions_for` asks
    of one."""
    return [_change_qa(ob) for ob in _change_subjects(scene.at_start())]


def _change_subjects(start: list[SceneObject]) -> list[SceneObject]:
    """The objects a change question may ask of: there at the start, not the mover, at most one event."""
    return [o for o in start if o.role in ("static", "changer", "disappear") and len(o.events()) <= 1]


def _change_qa(ob: SceneObject) -> QA:
    return QA("change", f"What happened to the {ob.shape}?", _change_answer(ob))


def end_colour_questions(scene: Scene) -> list[QA]:
    """'What colour is the X at the end?' about every corner object visible in the last second.

    The colour a change answer or an order phrase names ("it turned blue"), asked on its own: for an
    object that changes colour or appears, only the frames after the keyframe hold it.
    """
    return [QA(END_COLOUR, f"What colour is the {ob.shape} at the end?", ob.colours[-1])
            for ob in scene.objects if ob.role != "mover" and ob.visible[-1]]


def _change_answer(ob: SceneObject) -> str:
    events = ob.events()
    if not events:
        return "nothing changed"
    block, what = events[0]
    if what == "disappeared":
        return "it disappeared"
    return f"it turned {ob.colours[block]}"


def _order_pairs(scene: Scene, *, across: bool = False) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """Every pair of events at different times, each event as (block, phrase), worded unambiguously; with
    `across`, only pairs whose events fall in different segments."""
    events: list[tuple[int, str]] = []
    for ob in scene.objects:
        for block, what in ob.events():
            if what == "changed colour":
                what = f"turned {ob.colours[block]}"
            events.append((block, f"the {ob.shape} {what}"))
    unique = _unambiguous(events)
    apart = (lambda a, b: scene.segment_of(a) != scene.segment_of(b)) if across else (lambda a, b: a != b)
    return [(a, b) for i, a in enumerate(unique) for b in unique[i + 1 :] if apart(a[0], b[0])]


def _order_qa(a: tuple[int, str], b: tuple[int, str]) -> QA:
    first = a if a[0] < b[0] else b
    return QA("order", f"Which happened first, {a[1]} or {b[1]}?", first[1])


def order_events(question: str) -> tuple[str, str] | None:
    """The two events an order question asks about ("the square turned blue", ...), None for any other text."""
    m = re.fullmatch(r"Which happened first, (.+) or (.+)\?", question)
    return (m.group(1), m.group(2)) if m else None


def order_objects(question: str) -> int | None:
    """How many objects an order question's two events happen to: 1 (an object that turned one colour, then
    another) or 2 (each event names its object by shape, unique in a scene). None for any other text."""
    events = order_events(question)
    return None if events is None else len({e.split()[1] for e in events})


def _order_question(scene: Scene, rng: random.Random) -> QA | None:
    """'Which happened first, A or B?' over two events at different times, worded differently; in a long video
    of several segments, two events in different segments."""
    pairs = _order_pairs(scene, across=scene.segment_seconds is not None and scene.num_segments > 1)
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    if rng.random() < 0.5:
        a, b = b, a
    return _order_qa(a, b)


def all_order_questions(scene: Scene) -> list[QA]:
    """Every order question the scene allows: each pair of events at different times, asked both ways."""
    return [qa for a, b in _order_pairs(scene) for qa in (_order_qa(a, b), _order_qa(b, a))]


def caption_for(scene: Scene) -> str:
    """A one-paragraph description of everything that happens, in order; in the long world, with when."""
    at = (lambda b: f" at {b}s") if scene.segment_seconds is not None else (lambda b: "")  # noqa: E731
    parts: list[str] = []
    for ob in scene.objects:
        if ob.role == "mover":
            since = f" from {ob.move_start}s" if scene.segment_seconds is not None else ""
            parts.append(f"a {ob.start_colour} {ob.shape} moves {ob.direction} {ob.speed}{since}")
            continue
        name = f"a {ob.start_colour} {ob.shape}"
        events = ob.events()
        if ob.role == "appear":
            parts.append(f"a {ob.start_colour} {ob.shape} appears" + at(events[0][0]))
        elif ob.role == "disappear":
            parts.append(f"{name} disappears" + at(events[0][0]))
        elif ob.role == "changer":
            seq = [ob.colours[b] + at(b) for b, _ in events]
            parts.append(f"{name} turns " + ", then ".join(seq))
        else:
            parts.append(f"{name} stays still")
    return " ".join(p[0].upper() + p[1:] + "." for p in parts)


# --- multiple choice ---------------------------------------------------------------------------


def question_id(video_id: str, k: int) -> str:
    """The id of a video's k-th question (from 1), in qa.jsonl order: it seeds the question's options,
    so a lettered training record and the benchmark built from the same world offer the same ones."""
    return f"{video_id}-{k}"


def answer_pool(family: str, question: str, answer: str) -> list[str]:
    """Every answer of this family that could stand as an option."""
    if family in ("colour", END_COLOUR):
        return list(COLOURS)
    if family == "shape":
        return list(SHAPES)
    if family == "direction":
        return list(DIRECTIONS)
    if family in ("count", "times"):
        return [str(n) for n in range(0, 6)]
    if family in ("change", NET_CHANGE):
        return ["nothing changed", "it disappeared"] + [f"it turned {c}" for c in COLOURS]
    if family == WHEN and (t := seconds_in(answer)) is not None:  # other times, each more than a segment away
        return [when_answer(int(t) + d) for d in (-15, -10, -5, 5, 10, 15) if t + d >= 0]
    if family == "order" and (events := order_events(question)):
        return list(events)
    return [answer]


def options_for(qid: str, family: str, question: str, answer: str, *, num_options: int = NUM_OPTIONS
                ) -> tuple[list[str], int]:
    """(options, index of the answer): the answer plus distractors from the family's answers, in an
    order drawn from a generator seeded by `qid` (the same question always gets the same options)."""
    rng = random.Random(f"clapper-synthetic-mc:{qid}")
    others = [o for o in dict.fromkeys(answer_pool(family, question, answer)) if o != answer]
    options = [answer] + rng.sample(others, min(num_options - 1, len(others)))
    if len(options) < 2:
        raise ValueError(f"question {qid} ({family}) has no distractor for answer {answer!r}")
    rng.shuffle(options)
    return options, options.index(answer)
