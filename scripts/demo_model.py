"""The recipe of the built-in demo model: `python scripts/demo_model.py`.

    1. write a synthetic training set (the temporal world of shapes, `clapper_core.synthetic`), with every
       order question a video allows and captions asked in twelve ways ("what happens?" among them)
    2. build a tiny random Clapper: a byte-level BPE tokenizer fitted to the world's texts, a
       SigLIP of 64 px frames with 8 px patches (8x8 grid, pooled with stride 2 to 4x4 = 16 keyframe
       tokens), a 3x3 TimePerceiver (9 temporal tokens), a 4-layer Qwen2; the random SigLIP's
       attention output is scaled to a tenth, so each patch's features are about that patch, and its
       per-channel feature statistics over the world's frames go into the config, so the model
       standardises its vision features before the keyframe path and the TimePerceiver
    3. stage 1 (`clapper train --stage 1`): TimePerceiver + projector
    4. stage 2 (`clapper train --stage 2`): TimePerceiver + projector + LLM; the random vision
       tower stays frozen (its features already tell the world's colours, shapes and positions apart)
    5. copy the result into clapper_core/demo_model/

With `--segments 1 8` the training set is the long world instead (`WorldConfig(segments=(1, 8))`: videos of 1 to 8
four-second segments, with when and net change questions; docs/long_video.md), and the tokenizer is fitted to its
texts.

Everything is seeded: the same command gives the same model on the same machine, torch version and number of
CPU threads (`OMP_NUM_THREADS`; another count sums floats in another order, and the runs drift apart).
The built-in model was made with `OMP_NUM_THREADS=1 python scripts/demo_model.py --install`.
The same `build_recipe_model` / `train_recipe` serve `scripts/temporal.py`, which varies the fast path.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clapper_core.errors import ConfigError
from clapper_core.model.loading import DEMO_MODEL_DIR
from clapper_core.synthetic import (
    CAPTION_PROMPT,
    CAPTION_PROMPTS,
    WorldConfig,
    caption_for,
    end_colour_questions,
    generate_dataset,
    questions_for,
)
from clapper_core.synthetic.world import render_frames, sample_scene

DEMO_DIR = DEMO_MODEL_DIR  # where the built-in model is installed

VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              image_size=64, patch_size=8)  # fmt: skip
TEXT = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024)  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    videos: int = 4000  # training videos (a record per question, and one per caption)
    seed: int = 0
    stage1_steps: int = 50
    stage2_steps: int = 9000
    train_vision: bool = False  # the random SigLIP already separates the world's colours and shapes
    vision_lr: float | None = None  # with train_vision: the tower's own peak learning rate (default: stage2_lr)
    # With train_vision: its attention layers stay as built (scaled by vision_attention_gain), so only what acts on
    # each patch on its own trains (patch embedding, MLPs, norms) and each patch's features stay about that patch
    freeze_vision_attention: bool = False
    batch_size: int = 32
    stage1_lr: float = 2e-3
    stage2_lr: float = 2e-3
    vocab_size: int = 400
    multiple_choice: float = 0.25  # share of questions asked with lettered options, as `clapper eval` asks
    all_orders: bool = True  # every order question a video allows (each pair of events, both ways), not one per video
    all_changes: bool = False  # "What happened to the X?" about every object it may ask of, not one per video
    # "What colour is the X at the end?" about every corner object visible at the end: off, because its 13% more
    # records cost order 7 points in the same steps and did not help the change family (README, recipes 4 and 5)
    end_colours: bool = False
    caption_prompts: bool = True  # captions asked in several ways ("What happens?", ...), not one
    # The random SigLIP's attention output, scaled: at 1 every patch's features carry the whole frame (a moving
    # object elsewhere changes a still corner's cell as much as a colour change does); at 0.1 they describe their
    # own patch, as a trained tower's mostly do (README, recipe 6)
    vision_attention_gain: float = 0.1
    loss_average: str = "token"  # "sample": every record weighs the same, a caption no more than a one-word answer
    # The long world: each training video lasts (fewest, most) 4 s segments; None: one segment, the world of the
    # built-in model (docs/long_video.md)
    segments: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.train_vision:
            given = [flag for flag, on in (("--vision-lr", self.vision_lr is not None),
                                           ("--freeze-vision-attention", self.freeze_vision_attention)) if on]
            if given:
                raise ConfigError(f"{' and '.join(given)} only acts on a vision tower that trains: "
                                  "add --train-vision, or leave it out")
        # Both stages' settings, checked by the trainer's own rules now, not after stage 1 has trained
        stage1, _ = stage_configs(Path("base"), Path("train.jsonl"), Path("work"), recipe=self)
        if self.segments is not None:
            try:
                world = recipe_world(self)
            except ValueError as e:
                raise ConfigError(f"--segments: {e}") from None
            if world.seconds * world.segments[1] * stage1.fps > stage1.max_frames:
                raise ConfigError(f"--segments {' '.join(map(str, self.segments))}: a video of {world.segments[1]} "
                                  f"segments has more frames at {stage1.fps:g} fps than training samples "
                                  f"({stage1.max_frames}); at most {stage1.max_frames // world.seconds} segments")


def stage_configs(base: Path, data: Path, work: Path, *, recipe: Recipe, save_every: int = 0, resume: bool = False,
                  frozen: tuple[str, ...] = ()) -> tuple:
    """The recipe's stage 1 and stage 2 `TrainConfig`s (validated as they are built, a refusal naming its stage;
    nothing is read or written): stage 1 from `base` into work/stage1, stage 2 from there into work/stage2 with
    `frozen` kept frozen."""
    from clapper_core.train.config import TrainConfig

    def config(stage: int, **fields):
        try:
            return TrainConfig(stage=stage, data=data, batch_size=recipe.batch_size, seed=recipe.seed, warmup=0.05,
                               save_every=save_every, resume=resume, cache_dir=work / "clip_cache",
                               loss_average=recipe.loss_average, **fields)
        except ConfigError as e:
            raise ConfigError(f"the recipe's stage {stage}: {e}") from None

    return (config(1, model=str(base), output=work / "stage1", steps=recipe.stage1_steps, lr=recipe.stage1_lr),
            config(2, model=str(work / "stage1"), output=work / "stage2", train_vision=recipe.train_vision,
                   vision_lr=recipe.vision_lr, frozen=frozen, steps=recipe.stage2_steps, lr=recipe.stage2_lr))


def world_texts(n: int = 4000, seed: int = 12345, *, end_colours: bool = False, caption_prompts: bool = True,
                config: WorldConfig = WorldConfig()) -> list[str]:
    """Every kind of sentence the world's training data holds (questions, answers, captions), for the tokenizer:
    with `end_colours` and `caption_prompts` as in `generate_dataset`, of the world `config` describes."""
    from clapper_core.eval.answers import format_prompt
    from clapper_core.synthetic.questions import options_for

    rng = random.Random(seed)
    texts = list(CAPTION_PROMPTS) if caption_prompts else [CAPTION_PROMPT]
    for i in range(n):
        scene = sample_scene(rng, config)
        for k, qa in enumerate(questions_for(scene, rng) + (end_colour_questions(scene) if end_colours else [])):
            texts.append(f"{qa.question} {qa.answer}")
            if k % 4 == 0:  # the lettered form, its instruction and letters
                texts.append(format_prompt(qa.question, options_for(f"t{i}-{k}", qa.family, qa.question, qa.answer)[0]))
        texts.append(caption_for(scene))
    return texts


def build_recipe_model(out_dir: Path, *, recipe: Recipe = Recipe(), **overrides) -> Path:
    """The demo model's architecture, random, saved to `out_dir`; `overrides` as `build_tiny_clapper`."""
    from clapper_core.model.tiny import build_tiny_clapper

    vision = {**VISION, **overrides.pop("vision_config", {})}
    text = {**TEXT, **overrides.pop("text_config", {})}
    fields = dict(perceiver_grid=3, perceiver_depth=2, perceiver_heads=4, perceiver_mlp_ratio=2)
    fields.update(overrides)
    texts = world_texts(end_colours=recipe.end_colours, caption_prompts=recipe.caption_prompts,
                        config=recipe_world(recipe))
    out = build_tiny_clapper(out_dir, seed=recipe.seed, vocab_size=recipe.vocab_size, texts=texts,
                             vision_config=vision, text_config=text, **fields)
    standardize_vision_features(out, seed=recipe.seed, attention_gain=recipe.vision_attention_gain)
    return out


def world_frames(n: int = 64, *, seed: int = 999) -> list:
    """Every frame of `n` random scenes, (T, H, W, 3) uint8 each: what the vision tower will see."""
    rng = random.Random(seed)
    return [render_frames(sample_scene(rng)) for _ in range(n)]


def standardize_vision_features(model_dir: Path, *, seed: int = 0, scenes: int = 64, attention_gain: float = 1.0
                                ) -> None:
    """Scale the random vision tower's attention output by `attention_gain`, then measure its per-channel mean and
    std over the world's frames into the config.

    A random SigLIP maps the synthetic world (small shapes on a black background) to features whose
    channels carry large offsets shared by every patch of every video; what tells a red square from
    a blue circle, or a frame from the next, is a small variation on top. Fed as they are, neither
    the projector nor the TimePerceiver's attention can pick that variation out (the loss stays at
    the answer prior). `vision_feature_mean` / `vision_feature_std` make the model standardise the
    features before both paths: fixed statistics, part of the model, untouched by training.

    Random attention spreads every patch over the whole frame: a still corner object's cell changes from one frame
    to the next when the mover moves or another object changes, about as much as when it changes colour itself.
    Scaling each layer's attention output (`out_proj`) down keeps each patch's features about its own patch.
    """
    import torch

    from clapper_core.model import LoadConfig, load_model
    from clapper_core.model.loading import _quiet_transformers

    loaded = load_model(LoadConfig(model=str(model_dir), quant="fp32", device="cpu"))
    model, processor = loaded.model.eval(), loaded.processor
    with torch.no_grad():
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.out_proj.weight.mul_(attention_gain)  # (Dv, Dv)
            layer.self_attn.out_proj.bias.mul_(attention_gain)  # (Dv,)
        pixels = torch.cat(
            [processor.preprocess_frames(f[:: max(1, len(f) // 4)]) for f in world_frames(scenes, seed=seed)]
        )
        feats = model.model.get_frame_patches(pixels).flatten(0, 1)  # (T*P, Dv)
        mean, std = feats.mean(0), feats.std(0).clamp(min=1e-4)  # (Dv,)
    model.config.vision_feature_mean = [round(float(v), 6) for v in mean]
    model.config.vision_feature_std = [round(float(v), 6) for v in std]
    with _quiet_transformers():
        model.save_pretrained(str(model_dir))


def train_recipe(
    base: Path, data: Path, work: Path, *, recipe: Recipe = Recipe(), on_step=None, on_notice=None,
    save_every: int = 0, resume: bool = False,
) -> Path:
    """Stage 1 then stage 2 from the random model at `base`; returns the stage 2 output folder.

    `save_every` and `resume` are the trainer's: with checkpoints every `save_every` steps, a run stopped part
    way continues from its last one when started again with `resume` (a stage without one starts over).
    """
    from clapper_core.train.trainer import train

    frozen = vision_attention_prefixes(base) if recipe.train_vision and recipe.freeze_vision_attention else ()
    for cfg in stage_configs(base, data, work, recipe=recipe, save_every=save_every, resume=resume, frozen=frozen):
        train(cfg, on_step=on_step, on_notice=on_notice)
    return work / "stage2"



def vision_attention_prefixes(model_dir: Path) -> tuple[str, ...]:
    """The parameter-name prefixes of every attention layer of the vision tower of the model at `model_dir`, as its
    weight files name them (`model.vision_tower.encoder.layers.N.self_attn.`, or with `vision_model.` after
    `vision_tower.` in older layouts), in layer order."""
    import json
    import re

    from safetensors import safe_open

    index = Path(model_dir) / "model.safetensors.index.json"
    if index.is_file():
        names = list(json.loads(index.read_text())["weight_map"])
    else:
        names = []
        for f in sorted(Path(model_dir).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as st:
                names += list(st.keys())
    found = {}
    for name in names:
        m = re.match(r"(.*vision_tower\.(?:vision_model\.)?encoder\.layers\.(\d+)\.self_attn\.)", name)
        if m:
            found[int(m.group(2))] = m.group(1)
    return tuple(found[i] for i in sorted(found))


def install(model_dir: Path, dest: Path = DEMO_DIR) -> None:
    """Copy the model files (not checkpoints, caches or logs) into the package's demo_model folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in model_dir.iterdir():
        if f.is_file() and f.suffix in (".json", ".safetensors", ".jinja", ".txt", ".model") and f.name not in (
            "train_config.json",
        ):
            shutil.copy2(f, dest / f.name)


def recipe_world(recipe: Recipe) -> WorldConfig:
    """The synthetic world the recipe trains on: the one-segment world, or with `segments` the long one."""
    return WorldConfig(segments=recipe.segments)


def recipe_data(recipe: Recipe) -> dict:
    """`generate_dataset`'s options for the recipe's training set (its world only when it is the long one, so the
    one-segment recipe's options stay what they were)."""
    data = dict(multiple_choice=recipe.multiple_choice, all_orders=recipe.all_orders, all_changes=recipe.all_changes,
                end_colours=recipe.end_colours, caption_prompts=recipe.caption_prompts)
    return data | ({"config": recipe_world(recipe)} if recipe.segments is not None else {})


def add_recipe_arguments(parser: argparse.ArgumentParser, *, several_seeds: bool = False) -> None:
    """The recipe's command-line options, shared by this command and scripts/temporal.py (which, with
    `several_seeds`, takes one or more seeds: a run of the recipe each)."""
    from clapper_core.train.config import LOSS_AVERAGES

    parser.add_argument("--videos", type=int, default=Recipe.videos, help="training videos")
    parser.add_argument("--seed", type=int, nargs="+" if several_seeds else None,
                        default=[Recipe.seed] if several_seeds else Recipe.seed,
                        help="the run's randomness: the training videos, the random vision tower, the initial "
                             "weights and the order of the batches" + ("; several: a run each" if several_seeds
                                                                        else ""))
    parser.add_argument("--stage1-steps", type=int, default=Recipe.stage1_steps)
    parser.add_argument("--stage2-steps", type=int, default=Recipe.stage2_steps)
    parser.add_argument("--all-orders", action=argparse.BooleanOptionalAction, default=Recipe.all_orders,
                        help="every order question a video allows (each pair of events, both ways); "
                             "--no-all-orders: one per video")
    parser.add_argument("--all-changes", action=argparse.BooleanOptionalAction, default=Recipe.all_changes,
                        help="\"What happened to the X?\" about every object it may ask of; "
                             "--no-all-changes: one per video")
    parser.add_argument("--end-colours", action=argparse.BooleanOptionalAction, default=Recipe.end_colours,
                        help="ask the colour of every corner object at the end of the video")
    parser.add_argument("--caption-prompts", action=argparse.BooleanOptionalAction, default=Recipe.caption_prompts,
                        help="ask each caption in one of several ways (\"What happens?\", ...); "
                             "--no-caption-prompts: always the caption prompt")
    parser.add_argument("--vision-attention-gain", type=float, default=Recipe.vision_attention_gain,
                        help="scale of the random vision tower's attention output (1: as initialised)")
    parser.add_argument("--train-vision", action=argparse.BooleanOptionalAction, default=Recipe.train_vision,
                        help="stage 2 trains the vision tower too (default: frozen)")
    parser.add_argument("--vision-lr", type=float, default=Recipe.vision_lr,
                        help="with --train-vision: the tower's own peak learning rate (default: the stage 2 one)")
    parser.add_argument("--freeze-vision-attention", action="store_true",
                        help="with --train-vision: the tower's attention layers stay as built, only its per-patch "
                             "layers train")
    parser.add_argument("--segments", type=int, nargs=2, metavar=("FEWEST", "MOST"),
                        help="train on the long world: videos of FEWEST to MOST 4 s segments (e.g. 1 8), with when "
                             "and net change questions; default: one segment")
    parser.add_argument("--loss-average", choices=LOSS_AVERAGES, default=Recipe.loss_average,
                        help="token: every answer token weighs the same (a caption outweighs a one-word answer); "
                             "sample: every record weighs the same")


def recipe_from_arguments(args: argparse.Namespace, *, seed: int | None = None) -> Recipe:
    """The Recipe that `add_recipe_arguments`' options ask for (the rest at its defaults); `seed` picks one of
    several."""
    return Recipe(videos=args.videos, seed=args.seed if seed is None else seed, stage1_steps=args.stage1_steps,
                  stage2_steps=args.stage2_steps, all_orders=args.all_orders, all_changes=args.all_changes,
                  end_colours=args.end_colours, caption_prompts=args.caption_prompts,
                  vision_attention_gain=args.vision_attention_gain, loss_average=args.loss_average,
                  train_vision=args.train_vision, vision_lr=args.vision_lr,
                  freeze_vision_attention=args.freeze_vision_attention,
                  segments=tuple(args.segments) if args.segments else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/demo_model.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/demo"), help="folder for data, checkpoints, logs")
    parser.add_argument("--install", action="store_true", help=f"copy the trained model into {DEMO_DIR}")
    add_recipe_arguments(parser)
    args = parser.parse_args(argv)
    try:
        recipe = recipe_from_arguments(args)
    except ConfigError as e:
        parser.error(str(e))
    work: Path = args.work
    t0 = time.perf_counter()
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    say(f"writing {recipe.videos} synthetic videos to {work / 'data'}")
    summary = generate_dataset(work / "data", num_videos=recipe.videos, seed=recipe.seed, **recipe_data(recipe))
    base = build_recipe_model(work / "base", recipe=recipe)

    def on_step(s):
        if s.step % 50 == 0 or s.step == s.total:
            say(f"step {s.step}/{s.total} loss {s.loss:.4f} lr {s.lr:.2e} {s.tokens_per_s:,.0f} tok/s "
                f"eta {s.eta_s:.0f}s")

    final = train_recipe(base, summary.train_file, work, recipe=recipe, on_step=on_step, on_notice=say)
    say(f"trained in {time.perf_counter() - t0:.0f}s: {final}")
    if args.install:
        install(final)
        say(f"installed into {DEMO_DIR}")
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
