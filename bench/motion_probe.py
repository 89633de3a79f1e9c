"""How much of a segment's motion survives each fast-path summary? Linear probes on the demo's vision features.

The demo recipe's random SigLIP (standardised features) encodes 4 frames at 1 fps of synthetic scenes; a
logistic-regression probe is trained to read the mover's direction (4 classes) from:

    keyframe                the keyframe's 8x8 patch grid
    keyframe + 3x3 average  ... and the segment's spatio-temporal average on the 3x3 grid (average pooling)
    3x3 motion              the last frame minus the keyframe, pooled to the 3x3 grid (what the
                            TimePerceiver's motion features give its queries)
    keyframe + 3x3 motion   both

    python bench/motion_probe.py            # about a minute on 2 CPU cores
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
    args = p.parse_args(argv)

    import torch

    from clapper_core.model import LoadConfig, load_model
    from clapper_core.model.time_perceiver import grid_pool, spatiotemporal_avg_pool
    from clapper_core.synthetic.world import DIRECTIONS, render_frames, sample_scene
    from clapper_core.train.demo import build_recipe_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_model(LoadConfig(model=str(build_recipe_model(Path(tmp) / "base")), quant="fp32", device="cpu"))
    model, proc = loaded.model.eval(), loaded.processor
    rng = random.Random(args.seed)
    dirs = list(DIRECTIONS)
    feats: dict[str, list] = {k: [] for k in ("keyframe", "keyframe + 3x3 average", "3x3 motion",
                                              "keyframe + 3x3 motion")}
    labels = []
    one = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(args.scenes):
            scene = sample_scene(rng)
            frames = render_frames(scene)  # (32, H, W, 3) at 8 fps
            fps = scene.config.fps
            x = proc.preprocess_frames(frames[[fps // 2 + fps * s for s in range(4)]])  # 1 fps, mid-second
            patches = model.model.standardize_patches(model.model.get_frame_patches(x))  # (4, P, D)
            key = patches[0].flatten()
            avg = spatiotemporal_avg_pool(patches[None], one, 3).flatten()
            motion = grid_pool((patches[3] - patches[0])[None, None], 3).flatten()
            for k, v in zip(feats, (key, torch.cat([key, avg]), motion, torch.cat([key, motion]))):
                feats[k].append(v)
            labels.append(dirs.index(scene.mover.direction))
    y = torch.tensor(labels)
    n = args.scenes * 3 // 4
    print(f"direction of motion, 4 classes (chance 25%), {n} training and {args.scenes - n} test scenes")
    print(f"{'features':<24}{'dims':>7}{'test accuracy':>15}")
    for name, rows in feats.items():
        X = torch.stack(rows)
        W = torch.zeros(X.shape[1], 4, requires_grad=True)
        b = torch.zeros(4, requires_grad=True)
        opt = torch.optim.Adam([W, b], lr=1e-2)
        for _ in range(300):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(X[:n] @ W + b, y[:n]) + 1e-3 * W.pow(2).sum()
            loss.backward()
            opt.step()
        acc = ((X[n:] @ W + b).argmax(1) == y[n:]).float().mean().item()
        print(f"{name:<24}{X.shape[1]:>7}{100 * acc:>14.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
