"""How much of a segment's motion survives each fast-path summary? Probes on the demo's vision features.

The demo recipe's random SigLIP (standardised features, attention output scaled by the recipe's
`vision_attention_gain`; `--vision-attention-gain 1` for the tower as initialised) encodes 4 frames at 1 fps of
synthetic scenes.

Direction: a logistic-regression probe is trained to read the mover's direction (4 classes) from:

    keyframe                the keyframe's 8x8 patch grid
    keyframe + 3x3 average  ... and the segment's spatio-temporal average on the 3x3 grid (average pooling)
    3x3 motion              the last frame minus the keyframe, pooled to the 3x3 grid (what the
                            TimePerceiver's motion features give its queries)
    keyframe + 3x3 motion   both

Colour changes: a one-hidden-layer MLP probe is trained to count how many times a corner object changes
colour (0 to 3, the "times" family) from the 3x3 cell the object sits in, per frame:

    cell average            the cell averaged over the 4 frames (what average pooling keeps)
    cell, 4 frames          the cell in each frame, in order
    cell minus keyframe     frames 2-4 minus the keyframe (the TimePerceiver's motion features)
    frame-to-frame sizes    the size (L2 norm) of each frame's change from the one before: 3 numbers

and the sizes of those steps (root mean square, as the TimePerceiver's direct path reads them) where the object
keeps its colour and where it changes: anything else that moves or changes in the frame shows in the first kind.

Shapes: the same MLP probe names a corner object's shape (square, circle, triangle) and colour from the
keyframe's features pooled to the keyframe path's 4x4 grid, the 2x2 cells of the canvas quarter the object sits
in: how much of what the one-frame questions ask the random vision tower's features hold.

With `--model DIR` (a trained Clapper with a fast path), the mover's direction is probed again from that
model's own vision tower (trained or not) and from the fast tokens it hands its LLM. With a TimePerceiver (the demo
model for one), the same count is
probed from what that model hands its LLM: the visual token of the object's 3x3 cell after the projector; and
from the same token, when a corner object's first event (appearing, disappearing, changing colour) happened,
which is what "which happened first" questions compare; and the colour a corner object turned, from that token
and, for reference, from the object's cell in the last frame (the vision tower's features before any training).

    python scripts/motion_probe.py                                   # about a minute on 2 CPU cores
    python scripts/motion_probe.py --model clapper_core/demo_model   # and the demo's perceiver tokens (3 min)
    python scripts/motion_probe.py --vision-attention-gain 1         # the tower's attention as initialised
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=800, help="scenes (three quarters train the probe)")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--count-scenes", type=int, default=3000, help="scenes for the colour-change probe")
    p.add_argument("--vision-attention-gain", type=float, default=None, metavar="G",
                   help="the random tower's attention output scale (default: the demo recipe's; 1: as initialised)")
    p.add_argument("--model", type=Path, action="append", default=[], metavar="DIR",
                   help="also probe this trained model's perceiver tokens (repeatable)")
    args = p.parse_args(argv)

    import torch

    from clapper_core.model import LoadConfig, load_model
    from scripts.demo_model import Recipe, build_recipe_model

    gain = Recipe.vision_attention_gain if args.vision_attention_gain is None else args.vision_attention_gain
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_recipe_model(Path(tmp) / "base", recipe=Recipe(vision_attention_gain=gain))
        loaded = load_model(LoadConfig(model=str(base), quant="fp32", device="cpu"))
    print(f"the demo recipe's random vision tower, attention output scaled by {gain:g}\n")
    model, proc = loaded.model.eval(), loaded.processor
    _direction_table(model, proc, args)
    _colour_change_table(model, proc, args)
    n = _keyframe_table(model, proc, args)
    for model_dir in args.model:
        _probe_trained(model_dir, args, n)
    return 0


def _direction_table(model, proc, args) -> None:
    """The mover's direction from the keyframe, its 3x3 average and its 3x3 motion: a linear probe each."""
    import torch

    from clapper_core.model.time_perceiver import spatiotemporal_avg_pool

    feats: dict[str, list] = {k: [] for k in ("keyframe", "keyframe + 3x3 average", "3x3 motion",
                                              "keyframe + 3x3 motion")}
    labels = []
    one = torch.ones(1, 4, dtype=torch.bool)
    for patches, label in _mover_segments(model, proc, args):
        key = patches[0].flatten()
        avg = spatiotemporal_avg_pool(patches[None], one, 3).flatten()
        motion = _motion_3x3(patches)
        for k, v in zip(feats, (key, torch.cat([key, avg]), motion, torch.cat([key, motion]))):
            feats[k].append(v)
        labels.append(label)
    y = torch.tensor(labels)
    n = args.scenes * 3 // 4
    print(f"direction of motion, 4 classes (chance 25%), {n} training and {args.scenes - n} test scenes, linear probe")
    print(f"{'features':<24}{'dims':>7}{'test accuracy':>15}")
    for name, rows in feats.items():
        X = torch.stack(rows)
        print(f"{name:<24}{X.shape[1]:>7}{100 * _linear_probe(X, y, n, classes=4):>14.1f}%")


def _colour_change_table(model, proc, args) -> None:
    """How many times a corner object changes colour, from summaries of its cell over the 4 frames."""
    import torch

    def frame_cells(scene, cell: int):  # the cell in each of the 4 frames, (4, D)
        return _frame_cells(model, proc, scene, cell)

    cells, changed = _corner_cells(frame_cells, random.Random(args.seed + 1), args.count_scenes)  # (N, 4, D), (N, 3)
    counts = changed.sum(1)  # (N,)
    n = args.count_scenes * 4 // 5
    summaries = {
        "cell average": cells.mean(1),
        "cell, 4 frames": cells.flatten(1),
        "cell minus keyframe": (cells[:, 1:] - cells[:, :1]).flatten(1),
        "frame-to-frame sizes": (cells[:, 1:] - cells[:, :-1]).norm(dim=-1),
    }
    share = torch.bincount(counts[n:], minlength=4).max().item() / len(counts[n:])
    print(f"\ncolour changes of a corner object, 0-3 (most common answer {100 * share:.1f}%), {n} training and "
          f"{len(counts) - n} test scenes, MLP probe (128 hidden)")
    print(f"{'features':<24}{'dims':>7}{'test accuracy':>15}")
    for name, X in summaries.items():
        print(f"{name:<24}{X.shape[1]:>7}{100 * _mlp_probe(X, counts, n, classes=4):>14.1f}%")
    _print_step_sizes(cells, changed)


def _keyframe_table(model, proc, args) -> int:
    """A corner object's shape and colour from the keyframe; returns the training-scene count."""
    n = args.count_scenes * 4 // 5
    quarters, shapes, colours = _keyframe_quarters(model, proc, random.Random(args.seed + 2), args.count_scenes)
    print(f"\na corner object's shape and colour from the keyframe's 4x4 cells of its quarter, {n} training "
          f"and {len(shapes) - n} test scenes, MLP probe (128 hidden)")
    print(f"{'question':<24}{'dims':>7}{'test accuracy':>15}")
    for name, y, k in (("shape, 3 classes", shapes, 3), ("colour, 5 classes", colours, 5)):
        print(f"{name:<24}{quarters.shape[1]:>7}{100 * _mlp_probe(quarters, y, n, classes=k):>14.1f}%")
    return n


def _probe_trained(model_dir: Path, args, n: int) -> None:
    """The colour-change count (same scenes), then the second of the first event, from a trained model's
    visual token of the object's cell."""
    import torch

    from clapper_core.model import LoadConfig, load_model

    loaded = load_model(LoadConfig(model=str(model_dir), quant="fp32", device="cpu"))
    model, proc = loaded.model.eval(), loaded.processor
    if model.config.fast_path != "none":
        _direction_from_trained(model, proc, model_dir, args)
    if model.config.perceiver_grid == 3 and model.config.patch_grid == 8:
        _shapes_from_tokens(model, proc, model_dir, args, n)
    if model.model.time_perceiver is None or model.config.perceiver_grid != 3:
        print(f"\n{model_dir}: no 3x3 TimePerceiver to probe")
        return

    def perceiver_cell(scene, cell: int):  # the visual token the LLM gets for the cell, (1, Dt)
        patches = _segment_patches(model, proc, scene)  # (4, P, D)
        tokens = model.model.encode_segments(patches, [4])  # (keyframe tokens + 9, Dt)
        return tokens[len(tokens) - 9 + cell][None]

    cells, changed = _corner_cells(perceiver_cell, random.Random(args.seed + 1), args.count_scenes)  # (N, 1, Dt)
    counts = changed.sum(1)  # (N,)
    print(f"\n{model_dir}: the same count from the cell's perceiver token after the projector")
    print(f"{'perceiver token':<24}{cells.shape[-1]:>7}{100 * _mlp_probe(cells[:, 0], counts, n, classes=4):>14.1f}%")
    tokens, blocks = _first_events(perceiver_cell, random.Random(args.seed + 3), args.count_scenes)  # (N, 1, Dt)
    share = torch.bincount(blocks[n:]).max().item() / len(blocks[n:])
    print(f"\n{model_dir}: the second of a corner object's first event (1-3, most common answer {100 * share:.1f}%) "
          f"from the same token, {n} training and {len(blocks) - n} test scenes")
    print(f"{'perceiver token':<24}{tokens.shape[-1]:>7}{100 * _mlp_probe(tokens[:, 0], blocks, n, classes=3):>14.1f}%")

    def last_frame_cell(scene, cell: int):  # the cell in the last frame, from the same vision tower, (1, D)
        return _frame_cells(model, proc, scene, cell)[-1:]

    print(f"\n{model_dir}: the colour a corner object turned (its colour in the last frame; 5 classes), "
          f"{n} training and {args.count_scenes - n} test scenes, MLP probe (128 hidden)")
    for name, read in (("last frame's cell", last_frame_cell), ("perceiver token", perceiver_cell)):
        X, colours = _new_colours(read, random.Random(args.seed + 4), args.count_scenes)  # (N, 1, D), (N,)
        print(f"{name:<24}{X.shape[-1]:>7}{100 * _mlp_probe(X[:, 0], colours, n, classes=5):>14.1f}%")


def _direction_from_trained(model, proc, model_dir: Path, args) -> None:
    """The mover's direction (the first table's scenes and probe) from the trained model's own vision tower (its 3x3
    motion, as in the first table) and from the fast tokens it hands its LLM (all of them, after the projector):
    what the tower still holds, and what reaches the LLM, whether or not the model learned to answer with it."""
    import torch

    motion, fast, labels = [], [], []
    for patches, label in _mover_segments(model, proc, args):
        motion.append(_motion_3x3(patches))
        with torch.no_grad():
            tokens = model.model.encode_segments(patches, [4])  # (keyframe tokens + fast tokens, Dt)
        fast.append(tokens[model.config.keyframe_grid ** 2:].flatten())
        labels.append(label)
    y, n = torch.tensor(labels), args.scenes * 3 // 4
    print(f"\n{model_dir}: direction of motion (4 classes), the first table's scenes and probe")
    for name, rows in (("its tower's 3x3 motion", motion), ("its fast tokens", fast)):
        X = torch.stack(rows)
        print(f"{name:<24}{X.shape[1]:>7}{100 * _linear_probe(X, y, n, classes=4):>14.1f}%")


def _shapes_from_tokens(model, proc, model_dir: Path, args, n: int) -> None:
    """A corner object's shape from the visual tokens the LLM gets (after the projector): the fast token of its
    3x3 cell, the 2x2 keyframe tokens of its quarter of the 4x4 grid, and both."""
    import torch

    from clapper_core.synthetic.world import SHAPES

    fast, key, shapes = [], [], []
    with torch.no_grad():
        for scene, ob, (r, c) in _corner_objects(random.Random(args.seed + 5), args.count_scenes,
                                                 lambda o: o.role != "mover" and o.visible[0]):
            tokens = model.model.encode_segments(_segment_patches(model, proc, scene), [4])  # (16 + 9, Dt)
            fast.append(tokens[len(tokens) - 9 + 3 * r + c])  # as `perceiver_cell` in `_probe_trained`
            key.append(_quarter(tokens[: len(tokens) - 9], r, c))
            shapes.append(SHAPES.index(ob.shape))
    y = torch.tensor(shapes)
    print(f"\n{model_dir}: a corner object's shape (3 classes) from its visual tokens after the projector, "
          f"{n} training and {args.count_scenes - n} test scenes, MLP probe (128 hidden)")
    fast, key = torch.stack(fast), torch.stack(key)
    for name, X in (("fast token", fast), ("keyframe quarter", key), ("both", torch.cat([fast, key], 1))):
        print(f"{name:<24}{X.shape[1]:>7}{100 * _mlp_probe(X, y, n, classes=3):>14.1f}%")


def _mover_segments(model, proc, args):
    """The direction probes' `args.scenes` scenes (seeded by `args.seed`): each one's standardised 4 frames through
    `model`'s vision tower, (4, P, D), and the index of its mover's direction in `DIRECTIONS`."""
    import torch

    from clapper_core.synthetic.world import DIRECTIONS, sample_scene

    rng, dirs = random.Random(args.seed), list(DIRECTIONS)
    for _ in range(args.scenes):
        scene = sample_scene(rng)
        with torch.no_grad():
            patches = _segment_patches(model, proc, scene)  # (4, P, D)
        yield patches, dirs.index(scene.mover.direction)


def _motion_3x3(patches):
    """The last frame minus the keyframe, pooled to the 3x3 grid: (4, P, D) -> (9*D,)."""
    from clapper_core.model.time_perceiver import grid_pool

    return grid_pool((patches[3] - patches[0])[None, None], 3).flatten()


def _segment_patches(model, proc, scene):
    """The scene's 4 frames at 1 fps (mid-second) through the vision tower, standardised: (4, P, D)."""
    from clapper_core.synthetic.world import frames_at_one_fps

    frames = frames_at_one_fps(scene)[:4]  # (4, H, W, 3)
    return model.model.standardize_patches(model.model.get_frame_patches(proc.preprocess_frames(frames)))


def _frame_cells(model, proc, scene, cell: int):
    """The scene's 3x3 cell `cell` in each of its 4 frames, from `model`'s vision tower: (4, D)."""
    from clapper_core.model.time_perceiver import grid_pool

    return grid_pool(_segment_patches(model, proc, scene)[None], 3)[0][:, cell]


def _corner_objects(rng, scenes: int, eligible):
    """(scene, object, (row, col)) for `scenes` random scenes with an object that `eligible(object)` accepts,
    one such object drawn from each; (row, col) is its corner, 0 or 2 on the 3x3 grid (corner objects sit in
    corner cells), which is also the first row and column of its quarter on the 4x4 grid."""
    from clapper_core.synthetic.world import corner_of, sample_scene

    found = 0
    while found < scenes:
        scene = sample_scene(rng)
        candidates = [o for o in scene.objects if eligible(o)]
        if not candidates:
            continue
        ob = rng.choice(candidates)
        row, col = corner_of(scene, ob)
        yield scene, ob, (2 * row, 2 * col)
        found += 1


def _corner_samples(read, rng, scenes: int, eligible, label):
    """`read(scene, cell)` of the 3x3 cell of a corner object that `eligible(object)` accepts, in each of
    `scenes` random scenes, and `label(object)`: (N, ...) and (N,)."""
    import torch

    rows, labels = [], []
    with torch.no_grad():
        for scene, ob, (row, col) in _corner_objects(rng, scenes, eligible):
            rows.append(read(scene, 3 * row + col))
            labels.append(label(ob))
    return torch.stack(rows), torch.tensor(labels)


def _corner_cells(read, rng, scenes: int):
    """A still corner object (static or changing colour), labelled with whether it changes colour at each of the
    three steps between its four seconds: (N, ...) and (N, 3) bool; their sum is the "times" answer."""
    return _corner_samples(read, rng, scenes, lambda o: o.role in ("static", "changer"),
                           lambda o: [a != b for a, b in zip(o.colours, o.colours[1:])])


def _print_step_sizes(cells, changed) -> None:
    """How far a corner object's cell moves from one frame to the next, split by whether the object changed
    colour: cells (N, 4, D), changed (N, 3) bool."""
    import torch

    from clapper_core.model.time_perceiver import cell_history

    real = torch.ones(cells.shape[:2], dtype=torch.bool)  # (N, 4): every frame is real
    sizes = cell_history(cells[:, :, None], real, cells.shape[1])[1][:, 0]  # (N, 3): the direct path's step sizes
    same, turned = sizes[~changed], sizes[changed]
    q = lambda x, p: torch.quantile(x, p).item()  # noqa: E731
    print(f"\nthe cell's step from one frame to the next (root mean square): {len(same)} steps where the object "
          f"keeps its colour, median {q(same, 0.5):.3f}, 99th percentile {q(same, 0.99):.3f}, largest "
          f"{same.max():.3f}; {len(turned)} where it changes colour, smallest {turned.min():.3f}, median "
          f"{q(turned, 0.5):.3f}; {int((same >= turned.min()).sum())} still steps as large as the smallest change")


def _first_events(read, rng, scenes: int):
    """A corner object with an event (it appears, disappears or changes colour), labelled with the second of its
    first event, from 0."""
    return _corner_samples(read, rng, scenes, lambda o: o.role != "mover" and o.events(),
                           lambda o: o.events()[0][0] - 1)


def _new_colours(read, rng, scenes: int):
    """A corner object that changes colour, labelled with its colour in the last sampled frame (what "what
    happened to it?" names: "it turned red"), as an index into the world's colours."""
    from clapper_core.synthetic.world import COLOURS

    names = list(COLOURS)
    return _corner_samples(read, rng, scenes, lambda o: o.role == "changer" and o.colour_changes,
                           lambda o: names.index(o.colours[3]))


def _keyframe_quarters(model, proc, rng, scenes: int):
    """The keyframe's features pooled to 4x4, the 2x2 cells of the quarter holding a corner object visible
    at the start, flattened, with the object's shape and colour: (N, 4*D), (N,), (N,)."""
    import torch

    from clapper_core.model.time_perceiver import grid_pool
    from clapper_core.synthetic.world import COLOURS, SHAPES

    rows, shapes, colours = [], [], []
    with torch.no_grad():
        for scene, ob, (r, c) in _corner_objects(rng, scenes, lambda o: o.role != "mover" and o.visible[0]):
            keyframe = _segment_patches(model, proc, scene)[:1]  # (1, P, D)
            rows.append(_quarter(grid_pool(keyframe[None], 4)[0, 0], r, c))  # 4x4 cells (16, D) -> (4*D,)
            shapes.append(SHAPES.index(ob.shape))
            colours.append(list(COLOURS).index(ob.start_colour))
    return torch.stack(rows), torch.tensor(shapes), torch.tensor(colours)


def _quarter(grid, r: int, c: int):
    """The 2x2 cells of a 4x4 grid, (16, D), in the quarter whose first row and column are (r, c): (4*D,)."""
    return grid.unflatten(0, (4, 4))[r : r + 2, c : c + 2].flatten()


def _linear_probe(X, y, n: int, *, classes: int) -> float:
    """Logistic regression on the features as they are (weights from zero, L2 1e-3); test accuracy."""
    import torch

    probe = torch.nn.Linear(X.shape[1], classes)
    torch.nn.init.zeros_(probe.weight)
    torch.nn.init.zeros_(probe.bias)
    return _train_and_score(probe, X, y, n, lr=1e-2, steps=300, decay=lambda: 1e-3 * probe.weight.pow(2).sum())


def _mlp_probe(X, y, n: int, *, classes: int, hidden: int = 128) -> float:
    """One hidden layer on the features standardised over the training rows; test accuracy."""
    import torch

    X = (X - X[:n].mean(0)) / (X[:n].std(0) + 1e-4)
    torch.manual_seed(0)
    probe = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, classes))
    return _train_and_score(probe, X, y, n, lr=3e-3, steps=800)


def _train_and_score(probe, X, y, n: int, *, lr: float, steps: int, decay=None) -> float:
    """Full-batch Adam on the first n rows; accuracy on the rest."""
    import torch

    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(X[:n]), y[:n])
        if decay is not None:
            loss = loss + decay()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (probe(X[n:]).argmax(1) == y[n:]).float().mean().item()

if __name__ == "__main__":
    sys.exit(main())
