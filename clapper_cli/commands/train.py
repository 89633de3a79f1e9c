"""`clapper train`: the two training stages; `clapper train plot` and `clapper train synth` beside it.

Progress (loss, samples/s, tokens/s, time waiting on data, peak memory, a smoothed ETA) goes to stderr, as a rich display on a terminal and as plain
lines otherwise; stdout gets only the path of the trained model, so scripts can chain stages.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clapper_cli import options as opt
from clapper_cli.options import DeviceChoice, choice_value
from clapper_core.train.config import LOSS_AVERAGES, PRECISIONS, TrainConfig

EPILOG = """\
[bold]Examples[/bold]

  [cyan]clapper train synth data/ -n 2000[/cyan]   [dim]# a synthetic training set (videos + train.jsonl)[/dim]
  [cyan]clapper train --data data/train.jsonl --from clapper-demo --stage 1 -o runs/s1[/cyan]
  [cyan]clapper train --data llava.json --video-root videos/ --from runs/s1 --stage 2 --lora -o runs/s2[/cyan]
  [cyan]clapper train --data ... -o runs/s2 --resume[/cyan]   [dim]# continue from the newest checkpoint[/dim]
  [cyan]torchrun --nproc-per-node 8 -m clapper_cli.main train --data ... --stage 2 -o runs/s2[/cyan]
  [cyan]clapper train plot runs/s2/metrics.jsonl[/cyan]   [dim]# -> runs/s2/loss.png[/dim]
"""

DATA_PANEL = "Data"
TRAIN_PANEL = "Optimisation"
RUN_PANEL = "Run"

train_app = opt.App(
    help="Train a Clapper model on videos with conversations (LLaVA format): stage 1 or stage 2.",
    epilog=EPILOG,
    rich_markup_mode="rich",
    invoke_without_command=True,
    no_args_is_help=True,
)


# Defaults and choices come from TrainConfig (a light import: no torch), so they are written once.
_D = {f.name: f.default for f in fields(TrainConfig)}
PrecisionChoice = Enum("PrecisionChoice", {p: p for p in PRECISIONS}, type=str)
LossAverageChoice = Enum("LossAverageChoice", {p: p for p in LOSS_AVERAGES}, type=str)


@train_app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    data: Annotated[
        Optional[str],
        typer.Option("--data", "-d", help="Training data in the LLaVA conversation format: a JSON or JSONL file, a "
                     "folder of them (LLaVA-Video-178K as released), or a quoted glob.", show_default=False,
                     rich_help_panel=DATA_PANEL),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Folder for the trained model, checkpoints and metrics.jsonl.",
                     show_default=False, file_okay=False, rich_help_panel=DATA_PANEL),
    ] = None,
    video_root: Annotated[
        Optional[Path],
        typer.Option("--video-root", help="Video paths in the data are relative to this (default: the data's "
                     "folder; then each annotation file's own folder).", show_default=False, file_okay=False,
                     rich_help_panel=DATA_PANEL),
    ] = None,
    from_model: Annotated[
        str,
        typer.Option("--from", metavar="<name|dir>", help="Start from this model: a Clapper or LLaVA-OneVision "
                     "directory, a Hugging Face id, or clapper-demo.", rich_help_panel=DATA_PANEL),
    ] = _D["model"],
    stage: Annotated[
        int, typer.Option("--stage", help="1: TimePerceiver + projector. 2: the LLM too.", min=1, max=2,
                          rich_help_panel=TRAIN_PANEL),
    ] = _D["stage"],
    lora: Annotated[
        bool, typer.Option("--lora", help="Stage 2: train LoRA adapters (q/k/v/o) instead of the whole LLM; "
                           "merged into the saved model.", rich_help_panel=TRAIN_PANEL),
    ] = _D["lora"],
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, help="LoRA rank (alpha is twice the rank).",
                                           rich_help_panel=TRAIN_PANEL)] = _D["lora_rank"],
    train_vision: Annotated[
        bool, typer.Option("--train-vision", help="Stage 2: train the vision tower as well.",
                           rich_help_panel=TRAIN_PANEL),
    ] = _D["train_vision"],
    vision_lr: Annotated[
        Optional[float], typer.Option("--vision-lr", help="With --train-vision: the vision tower's peak learning "
                                      "rate (default: --lr); pretrained towers usually want it 5-10x lower.",
                                      show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option("--steps", min=1, help="Optimizer steps (default: --epochs over the data).",
                                    show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the data, when --steps is not "
                                          "given.", rich_help_panel=TRAIN_PANEL)] = _D["epochs"],
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Examples per micro-batch, per process.",
                          rich_help_panel=TRAIN_PANEL),
    ] = _D["batch_size"],
    grad_accum: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.", rich_help_panel=TRAIN_PANEL),
    ] = _D["grad_accum"],
    lr: Annotated[
        Optional[float], typer.Option("--lr", help="Peak learning rate (default: 1e-3 stage 1, 2e-5 stage 2).",
                                      show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up, as a fraction of the steps.",
                                          rich_help_panel=TRAIN_PANEL)] = _D["warmup"],
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.",
                                                rich_help_panel=TRAIN_PANEL)] = _D["weight_decay"],
    loss_average: Annotated[
        LossAverageChoice, typer.Option("--loss-average", help="token: every answer token weighs the same (long "
                                        "answers weigh more); sample: every record weighs the same.",
                                        case_sensitive=False, rich_help_panel=TRAIN_PANEL),
    ] = _D["loss_average"],
    grad_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Recompute activations in the backward pass "
                           "(less memory, ~30% slower).", rich_help_panel=TRAIN_PANEL),
    ] = _D["gradient_checkpointing"],
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="auto: bf16 autocast on a GPU, fp32 on the CPU.",
                                      case_sensitive=False, rich_help_panel=TRAIN_PANEL),
    ] = _D["precision"],
    fps: Annotated[float, typer.Option("--fps", help="Frames sampled per second of video, as ask samples.",
                                       rich_help_panel=DATA_PANEL)] = _D["fps"],
    max_frames: Annotated[
        int, typer.Option("--max-frames", min=1, help="Upper bound on frames per video. 32 here, where ask and "
                          "caption take 96: training keeps every frame's activations for the backward pass, for "
                          "a whole batch of videos.", rich_help_panel=DATA_PANEL),
    ] = _D["max_frames"],
    num_workers: Annotated[
        int, typer.Option("--num-workers", "-j", min=0, help="Processes that decode videos ahead of the training "
                          "step (0: decode in the training process).", rich_help_panel=DATA_PANEL),
    ] = _D["num_workers"],
    prefetch: Annotated[int, typer.Option("--prefetch", min=1, help="Batches each data worker prepares ahead.",
                                          rich_help_panel=DATA_PANEL)] = _D["prefetch"],
    save_every: Annotated[
        int, typer.Option("--save-every", min=0, help="Checkpoint every N steps (0: only when stopped early); "
                          "Ctrl-C also saves one.", rich_help_panel=RUN_PANEL),
    ] = _D["save_every"],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --output.",
                                         rich_help_panel=RUN_PANEL)] = False,
    stop_after: Annotated[
        Optional[int], typer.Option("--stop-after", min=1, help="Leave after N steps in this run (checkpointed; "
                                    "the schedule is unchanged).", show_default=False, rich_help_panel=RUN_PANEL),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same batches and initial weights.",
                                      rich_help_panel=RUN_PANEL)] = _D["seed"],
    device: Annotated[DeviceChoice, typer.Option("--device", help="auto: CUDA when available.", case_sensitive=False,
                                                 rich_help_panel=RUN_PANEL)] = _D["device"],
    fsdp: Annotated[bool, typer.Option("--fsdp", help="Shard the model over the torchrun processes "
                                       "(for models that do not fit one GPU).", rich_help_panel=RUN_PANEL)] = False,
    cache_dir: Annotated[
        Optional[Path], typer.Option("--cache-dir", help="Keep decoded clips in this folder (default: none; worth "
                                     "it when the data fits and trains for several epochs).", show_default=False,
                                     file_okay=False, rich_help_panel=RUN_PANEL),
    ] = None,
    cache_max_gb: Annotated[float, typer.Option("--cache-max-gb", min=0.0, help="With --cache-dir: stop adding "
                                                "clips once it holds this much.", rich_help_panel=RUN_PANEL)]
    = _D["cache_max_gb"],
    log_every: Annotated[int, typer.Option("--log-every", min=1, help="Without a terminal: a progress line "
                                           "every N steps.", rich_help_panel=RUN_PANEL)] = 10,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notices on stderr.",
                                        rich_help_panel=RUN_PANEL)] = False,
) -> None:
    """Train a Clapper model on videos with conversations (LLaVA format): stage 1 or stage 2."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None or output is None:
        raise typer.BadParameter("training needs --data FILE and --output DIR", param_hint="--data / --output")
    from clapper_core.distributed import dist_info
    from clapper_core.train import train as run_training

    cfg = TrainConfig(
        data=data, output=output, model=from_model, video_root=video_root, stage=stage, lora=lora,
        lora_rank=lora_rank, lora_alpha=2 * lora_rank, train_vision=train_vision, vision_lr=vision_lr, steps=steps,
        epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr, warmup=warmup, weight_decay=weight_decay,
        save_every=save_every, resume=resume, seed=seed, device=choice_value(device),
        precision=choice_value(precision), gradient_checkpointing=grad_checkpointing, fsdp=fsdp, fps=fps,
        max_frames=max_frames, cache_dir=cache_dir, cache_max_gb=cache_max_gb, stop_after=stop_after,
        loss_average=choice_value(loss_average), num_workers=num_workers, prefetch=prefetch,
    )  # fmt: skip
    main_rank = dist_info().is_main
    with _Progress(enabled=main_rank and not quiet, log_every=log_every) as progress:
        result = run_training(cfg, on_step=progress.step, on_notice=progress.notice if main_rank else None)
    if main_rank:
        if result.skipped_records:
            progress.notice(f"skipped {result.skipped_records} bad records of "
                            f"{result.skipped_records + result.num_records}")
        if not result.stopped_early:
            progress.notice(f"saved the model after {result.steps} steps (final loss {result.final_loss:.4f})")
            typer.echo(str(result.output))


class _Progress:
    """Rich progress on a terminal, plain lines every `log_every` steps otherwise; stderr only."""

    def __init__(self, *, enabled: bool, log_every: int):
        from clapper_cli.render import stderr_is_terminal

        self.enabled = enabled
        self.log_every = log_every
        self.live = enabled and stderr_is_terminal()
        self._bar = None
        self._task = None

    def __enter__(self):
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss [cyan]{task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
                TextColumn("data wait {task.fields[wait]}"), TextColumn("peak {task.fields[mem]}"),
                TextColumn("lr {task.fields[lr]}"), TextColumn("eta {task.fields[eta]}"),
                console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()

    def notice(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message, highlight=False, markup=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def step(self, s) -> None:
        if not self.enabled:
            return
        fields = dict(loss=f"{s.loss:.4f}", rate=f"{s.samples_per_s:,.1f} samples/s {s.tokens_per_s:,.0f} tok/s",
                      wait=f"{s.data_wait:.0%}", mem=_megabytes(s.peak_mem_mb), lr=f"{s.lr:.2e}",
                      eta=_duration(s.eta_s))
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("train", total=s.total, completed=s.step - 1, **fields)
            self._bar.update(self._task, completed=s.step, **fields)
        elif s.step % self.log_every == 0 or s.step == s.total:
            print(f"step {s.step}/{s.total}  loss {fields['loss']}  {fields['rate']}  data wait {fields['wait']}  "
                  f"peak {fields['mem']}  lr {fields['lr']}  epoch {s.epoch:.2f}  eta {fields['eta']}",
                  file=sys.stderr, flush=True)


def _megabytes(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@train_app.command("plot", epilog="[cyan]clapper train plot runs/s1/metrics.jsonl -o loss.png[/cyan]")
def plot(
    metrics: Annotated[Path, typer.Argument(help="metrics.jsonl of a training run.", dir_okay=False,
                                            show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG to write (default: loss.png beside "
                                                "the metrics).", show_default=False, dir_okay=False)] = None,
) -> None:
    """Draw the loss curve (and learning rate) of a training run as a PNG."""
    from clapper_core.train import plot_metrics

    path = plot_metrics(metrics, out or metrics.with_name("loss.png"))
    typer.echo(str(path))


@train_app.command("synth", epilog="[cyan]clapper train synth data/ -n 2000 --seed 1[/cyan]")
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder for videos/, train.jsonl and qa.jsonl.", file_okay=False,
                                            show_default=False)],
    num_videos: Annotated[int, typer.Option("--num-videos", "-n", min=1, help="Videos to write.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same videos and questions.")] = 0,
    size: Annotated[int, typer.Option("--size", help="Frame width and height in pixels (multiple of 16).")] = 64,
    seconds: Annotated[int, typer.Option("--seconds", help="Video length; one event slot per second.")] = 4,
    captions: Annotated[bool, typer.Option("--captions/--no-captions", help="Add a caption turn per video.")] = True,
    multi_turn: Annotated[bool, typer.Option("--multi-turn", help="One record per video, its questions as "
                                             "turns (default: one record per question).")] = False,
    multiple_choice: Annotated[float, typer.Option("--multiple-choice", min=0.0, max=1.0, metavar="SHARE",
                                                   help="Share of questions asked with lettered options, "
                                                   "answered with a letter, as `clapper eval` asks.")] = 0.0,
    all_orders: Annotated[bool, typer.Option("--all-orders", help="Every order question a video allows (each "
                                             "pair of events, both ways), not one.")] = False,
    all_changes: Annotated[bool, typer.Option("--all-changes", help="\"What happened to the X?\" about every "
                                              "object that question may ask of, not one.")] = False,
    end_colours: Annotated[bool, typer.Option("--end-colours", help="Also ask the colour of every corner object "
                                              "at the end of the video.")] = False,
    caption_prompts: Annotated[bool, typer.Option("--caption-prompts", help="Ask each caption in one of several "
                                                  "ways (\"What happens?\", ...), not always one.")] = False,
) -> None:
    """Write a synthetic temporal dataset: shapes that move, appear, vanish and change colour, with questions."""
    from clapper_core.errors import ConfigError
    from clapper_core.synthetic import WorldConfig, generate_dataset

    try:
        world = WorldConfig(size=size, seconds=seconds)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    summary = generate_dataset(out_dir, num_videos=num_videos, seed=seed, config=world, captions=captions,
                               multi_turn=multi_turn, multiple_choice=multiple_choice, all_orders=all_orders,
                               all_changes=all_changes, end_colours=end_colours, caption_prompts=caption_prompts)
    families = ", ".join(f"{k} {v}" for k, v in summary.family_counts.items())
    print(f"wrote {summary.num_videos} videos, {summary.num_questions} questions ({families})", file=sys.stderr)
    typer.echo(str(summary.train_file))


def register(app: typer.Typer) -> None:
    """Add `clapper train` (with `plot` and `synth`) to `app`."""
    app.add_typer(train_app, name="train")
