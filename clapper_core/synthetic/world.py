"""Scenes of the synthetic temporal world: what is in a video and what happens to it.

A scene lasts `seconds` seconds, cut into one-second blocks. Every discrete event (an object
appearing, disappearing or changing colour) happens on a block boundary, so a sampler that takes
one frame per second, at any phase, sees each block exactly once. The one moving object stays
still at the centre of the canvas for the first second, whatever its direction, then moves
steadily; the other objects sit in the corners, clear of every path the mover could take: nothing in the first frame
gives away how things will move or change.

The long world (`WorldConfig(segments=(1, 8))`) strings several such stretches together: a video lasts k
times `seconds` (k drawn per video; at 1 fps and 4 frames a segment, k is its segment count), events fall on
any second boundary across the whole video, and the mover stays still until a second drawn per video, moves for
`seconds - 1` seconds as fast as in a one-segment video, then stays still again; a changer changes colour at most
`seconds - 1` times, wherever in the video. A long video of one segment is drawn from the same scenes as a video of
the one-segment world (the mover starts at 1 s, the same lives), so its figures compare with that world's.

Rendering is pure numpy (`render_frames`); writing the video lives in `writer.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 245),
    "yellow": (240, 220, 40),
    "white": (240, 240, 240),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Distance covered over the whole video, in canvas widths: 12 px and 24 px on a 64 px canvas.
SPEEDS: dict[str, float] = {"slowly": 0.1875, "quickly": 0.375}
ROLES: tuple[str, ...] = ("static", "changer", "appear", "disappear")
ROLE_WEIGHTS: tuple[float, ...] = (0.2, 0.4, 0.2, 0.2)


@dataclass(frozen=True)
class WorldConfig:
    """How big and how long the synthetic videos are."""

    size: int = 64  # frame width and height in pixels (even, for H.264 4:2:0)
    fps: int = 8  # frames per second written to the video
    seconds: int = 4  # blocks of one second; events happen on block boundaries
    max_objects: int = 3  # objects per scene, mover included (at most len(SHAPES))
    # The long world: each video lasts k * `seconds`, k drawn uniformly from [lo, hi] per video (its segment count
    # at 1 fps); None: every video lasts `seconds` (the one-segment world, exactly as before the long world)
    segments: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 16:
            raise ValueError(f"size={self.size} must be a multiple of 16 and at least 32; try 64")
        if self.fps < 1:
            raise ValueError(f"fps={self.fps} must be at least 1; try 8")
        if self.seconds < 3:
            raise ValueError(f"seconds={self.seconds} must be at least 3 so that events can happen in order; try 4")
        if not 1 <= self.max_objects <= len(SHAPES):
            raise ValueError(f"max_objects={self.max_objects} must be between 1 and {len(SHAPES)}; try 3")
        if self.segments is not None:
            lo, hi = self.segments
            if not 1 <= lo <= hi:
                raise ValueError(f"segments={self.segments} must be (fewest, most) with 1 <= fewest <= most; "
                                 "try (1, 8)")

    @property
    def object_size(self) -> int:
        return self.size * 3 // 16  # 12 px on a 64 px canvas

    @property
    def num_frames(self) -> int:
        """Frames of a video of `seconds` (in the long world, of one segment: each scene's own config has its
        length)."""
        return self.fps * self.seconds


@dataclass(frozen=True)
class SceneObject:
    """One shape and its life: where it is, which colour it has in each block, when it is visible."""

    shape: str
    colours: tuple[str, ...]  # colour in each one-second block
    visible: tuple[bool, ...]  # visibility in each one-second block
    x: float  # top-left corner at t = 0, pixels
    y: float
    role: str  # "mover" or one of ROLES
    direction: str | None = None  # movers only
    speed: str | None = None  # movers only
    move_start: int = 1  # movers only: the second it starts moving
    move_seconds: int | None = None  # movers only: how long it moves; None: until the end of the video

    @property
    def start_colour(self) -> str:
        return self.colours[0]

    @property
    def colour_changes(self) -> int:
        return sum(a != b for a, b in zip(self.colours, self.colours[1:]))

    def events(self) -> list[tuple[int, str]]:
        """(block, description) of each discrete event, in time order."""
        out: list[tuple[int, str]] = []
        for b in range(1, len(self.colours)):
            if self.visible[b] and not self.visible[b - 1]:
                out.append((b, "appeared"))
            elif self.visible[b - 1] and not self.visible[b]:
                out.append((b, "disappeared"))
            elif self.colours[b] != self.colours[b - 1]:
                out.append((b, "changed colour"))
        return out

    def position(self, t: float, size: int, seconds: int) -> tuple[float, float]:
        """Top-left corner at time t (seconds)."""
        if self.direction is None:
            return self.x, self.y
        # Still during the first second (at least), so every frame of the first block (the keyframe,
        # whatever the sampling phase) shows the mover where it started.
        moving = max(0.0, t - self.move_start)
        if self.move_seconds is not None:
            moving = min(moving, self.move_seconds)
        dx, dy = DIRECTIONS[self.direction]
        v = SPEEDS[self.speed or "slowly"] * size / (self.move_seconds or seconds - 1)  # pixels per second
        return self.x + dx * v * moving, self.y + dy * v * moving


@dataclass(frozen=True)
class Scene:
    config: WorldConfig  # of this video: `seconds` is its whole length
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    segment_seconds: int | None = None  # a scene of the long world: seconds per segment; None: the one-segment world

    @property
    def mover(self) -> SceneObject:
        return next(o for o in self.objects if o.role == "mover")

    @property
    def num_segments(self) -> int:
        return -(-self.config.seconds // (self.segment_seconds or self.config.seconds))

    def segment_of(self, block: int) -> int:
        """The segment (from 0) that second `block` falls in."""
        return block // (self.segment_seconds or self.config.seconds)

    def at_start(self) -> list[SceneObject]:
        return [o for o in self.objects if o.visible[0]]


def sample_scene(rng: random.Random, config: WorldConfig = WorldConfig()) -> Scene:
    """Draw one scene: a mover at the centre plus up to `max_objects - 1` others in the corners. In the long world
    (`config.segments`) the scene lasts a drawn number of segments."""
    if config.segments is None:
        return _sample(rng, config, max_changes=config.seconds - 1, move_seconds=None)
    k = rng.randint(*config.segments)
    video = replace(config, seconds=config.seconds * k, segments=None)
    # as many colour changes at most as in one segment, wherever they fall: "how many times" stays a small number
    scene = _sample(rng, video, max_changes=config.seconds - 1, move_seconds=config.seconds - 1)
    return replace(scene, segment_seconds=config.seconds)


def _sample(rng: random.Random, config: WorldConfig, *, max_changes: int, move_seconds: int | None) -> Scene:
    """A scene of `config.seconds`: with `move_seconds`, the mover starts at a drawn second and moves that long."""
    n = config.seconds
    # Busy scenes are favoured: they are the ones with events to put in order.
    count = rng.choices(range(1, config.max_objects + 1), weights=range(1, config.max_objects + 1))[0]
    shapes = rng.sample(SHAPES, count)
    colours = rng.sample(list(COLOURS), len(shapes))  # distinct start colours: "the red object" is unique
    o = config.object_size
    centre = (config.size - o) / 2
    jitter = config.size / 32
    objects = [
        SceneObject(
            shape=shapes[0],
            colours=(colours[0],) * n,
            visible=(True,) * n,
            x=centre + rng.uniform(-jitter, jitter),
            y=centre + rng.uniform(-jitter, jitter),
            role="mover",
            direction=rng.choice(list(DIRECTIONS)),
            speed=rng.choice(list(SPEEDS)),
        )
    ]
    if move_seconds is not None:
        objects[0] = replace(objects[0], move_start=rng.randint(1, n - move_seconds), move_seconds=move_seconds)
    corners = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], len(shapes) - 1)
    # Room for a corner object's top-left corner once the mover's lanes (both axes, jitter
    # included) are kept clear: 0..12 px on a 64 px canvas.
    free = config.size / 2 - o / 2 - jitter - o
    for shape, colour, (cx, cy) in zip(shapes[1:], colours[1:], corners):
        x = rng.uniform(0, free) + cx * (config.size - o - free)
        y = rng.uniform(0, free) + cy * (config.size - o - free)
        role = rng.choices(ROLES, weights=ROLE_WEIGHTS)[0]
        cols, vis = _life(rng, role, colour, n, max_changes)
        objects.append(SceneObject(shape=shape, colours=cols, visible=vis, x=x, y=y, role=role))
    return Scene(config=config, objects=tuple(objects))


def _life(rng: random.Random, role: str, colour: str, n: int, max_changes: int
          ) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """Colour and visibility per block for a non-moving object of the given role (at most `max_changes` colour
    changes)."""
    cols = [colour] * n
    vis = [True] * n
    if role == "changer":
        changes = sorted(rng.sample(range(1, n), rng.randint(1, min(max_changes, n - 1))))
        for b in changes:
            new = rng.choice([c for c in COLOURS if c != cols[b - 1]])
            cols[b:] = [new] * (n - b)
    elif role == "appear":
        k = rng.randint(1, n - 1)
        vis = [b >= k for b in range(n)]
    elif role == "disappear":
        k = rng.randint(1, n - 1)
        vis = [b < k for b in range(n)]
    return tuple(cols), tuple(vis)


def render_frames(scene: Scene) -> np.ndarray:
    """All frames of the scene, (T, H, W, 3) uint8 RGB on a black background."""
    cfg = scene.config
    frames = np.zeros((cfg.num_frames, cfg.size, cfg.size, 3), dtype=np.uint8)  # (T, H, W, 3)
    yy, xx = np.mgrid[0 : cfg.size, 0 : cfg.size].astype(np.float32) + 0.5  # pixel centres, (H, W)
    # The mover is drawn last so that it passes over nothing but background anyway.
    order = sorted(scene.objects, key=lambda ob: ob.role == "mover")
    for i in range(cfg.num_frames):
        t = i / cfg.fps
        block = min(int(t), cfg.seconds - 1)
        for ob in order:
            if not ob.visible[block]:
                continue
            x, y = ob.position(t, cfg.size, cfg.seconds)
            mask = _shape_mask(ob.shape, xx - x, yy - y, cfg.object_size)
            frames[i][mask] = COLOURS[ob.colours[block]]
    return frames


def frames_at_one_fps(scene: Scene) -> np.ndarray:
    """One frame from the middle of each second, (seconds, H, W, 3): the frames a 1 fps sampler takes, one
    per block, whatever its phase."""
    fps = scene.config.fps
    return render_frames(scene)[[fps // 2 + fps * s for s in range(scene.config.seconds)]]


def corner_of(scene: Scene, ob: SceneObject) -> tuple[int, int]:
    """(row, col) of the quarter of the frame a corner object sits in: 0 for the top or left, 1 for the bottom or
    right. On a 3x3 grid its cell is (2 * row, 2 * col); on a 4x4 grid its quarter starts there too."""
    half = scene.config.size / 2
    return int(ob.y >= half), int(ob.x >= half)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, o: int) -> np.ndarray:
    """Boolean (H, W) mask of a shape whose bounding box is [0, o) x [0, o) in (u, v) coordinates."""
    inside = (u >= 0) & (u < o) & (v >= 0) & (v < o)
    if shape == "square":
        return inside
    if shape == "circle":
        r = o / 2
        return (u - r) ** 2 + (v - r) ** 2 <= r * r
    assert shape == "triangle", shape
    # Apex at the top centre, base along the bottom edge.
    return inside & (np.abs(u - o / 2) <= v / 2)
