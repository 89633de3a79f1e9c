"""`clapper train`: the two training stages; `clapper train plot` and `clapper train synth` beside it.

Progress (loss, tokens/s, ETA) goes to stderr, as a rich display on a terminal and as plain
lines otherwise; stdout gets only the path of the trained model, so scripts can chain stages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

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

train_app = typer.Typer(
    help="Train a Clapper model on videos with conversations (LLaVA format): stage 1 or stage 2.",
    epilog=EPILOG,
    rich_markup_mode="rich",
    invoke_without_command=True,
    no_args_is_help=True,
)


@train_app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    data: Annotated[
        Optional[Path],
        typer.Option("--data", "-d", help="Training file: JSON or JSONL records in the LLaVA conversation format.",
                     show_default=False, dir_okay=False, rich_help_panel=DATA_PANEL),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Folder for the trained model, checkpoints and metrics.jsonl.",
                     show_default=False, file_okay=False, rich_help_panel=DATA_PANEL),
    ] = None,
    video_root: Annotated[
        Optional[Path],
        typer.Option("--video-root", help="Video paths in the data are relative to this (default: the data's folder).",
                     show_default=False, file_okay=False, rich_help_panel=DATA_PANEL),
    ] = None,
    from_model: Annotated[
        str,
        typer.Option("--from", metavar="<name|dir>", help="Start from this model: a Clapper or LLaVA-OneVision "
                     "directory, a Hugging Face id, or clapper-demo.", rich_help_panel=DATA_PANEL),
    ] = "clapper-demo",
    stage: Annotated[
        int, typer.Option("--stage", help="1: TimePerceiver + projector. 2: the LLM too.", min=1, max=2,
                          rich_help_panel=TRAIN_PANEL),
    ] = 1,
    lora: Annotated[
        bool, typer.Option("--lora", help="Stage 2: train LoRA adapters (q/k/v/o) instead of the whole LLM; "
                           "merged into the saved model.", rich_help_panel=TRAIN_PANEL),
    ] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=1, rich_help_panel=TRAIN_PANEL)] = 16,
    train_vision: Annotated[
        bool, typer.Option("--train-vision", help="Stage 2: train the vision tower as well.",
                           rich_help_panel=TRAIN_PANEL),
    ] = False,
    vision_lr: Annotated[
        Optional[float], typer.Option("--vision-lr", help="With --train-vision: the vision tower's peak learning "
                                      "rate (default: --lr); pretrained towers usually want it 5-10x lower.",
                                      show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option("--steps", min=1, help="Optimizer steps (default: --epochs over the data).",
                                    show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.0, rich_help_panel=TRAIN_PANEL)] = 1.0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Examples per micro-batch, per process.",
                          rich_help_panel=TRAIN_PANEL),
    ] = 8,
    grad_accum: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.", rich_help_panel=TRAIN_PANEL),
    ] = 1,
    lr: Annotated[
        Optional[float], typer.Option("--lr", help="Peak learning rate (default: 1e-3 stage 1, 2e-5 stage 2).",
                                      show_default=False, rich_help_panel=TRAIN_PANEL),
    ] = None,
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up, as a fraction of the steps.",
                                          rich_help_panel=TRAIN_PANEL)] = 0.03,
    weight_decay: Annotated[float, typer.Option("--weight-decay", rich_help_panel=TRAIN_PANEL)] = 0.0,
    loss_average: Annotated[
        str, typer.Option("--loss-average", help="token: every answer token weighs the same (long answers weigh "
                          "more); sample: every record weighs the same.", rich_help_panel=TRAIN_PANEL),
    ] = "token",
    grad_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Recompute activations in the backward pass "
                           "(less memory, ~30% slower).", rich_help_panel=TRAIN_PANEL),
    ] = False,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 autocast on GPU, fp32 on CPU), bf16 or fp32.",
                          rich_help_panel=TRAIN_PANEL),
    ] = "auto",
    fps: Annotated[float, typer.Option("--fps", help="Frames sampled per second of video.",
                                       rich_help_panel=DATA_PANEL)] = 1.0,
    max_frames: Annotated[int, typer.Option("--max-frames", min=1, rich_help_panel=DATA_PANEL)] = 32,
    save_every: Annotated[
        int, typer.Option("--save-every", min=0, help="Checkpoint every N steps (0: only when stopped early).",
                          rich_help_panel=RUN_PANEL),
    ] = 500,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --output.",
                                         rich_help_panel=RUN_PANEL)] = False,
    stop_after: Annotated[
        Optional[int], typer.Option("--stop-after", min=1, help="Leave after N steps in this run (checkpointed; "
                                    "the schedule is unchanged).", show_default=False, rich_help_panel=RUN_PANEL),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=RUN_PANEL)] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cuda or cpu.", rich_help_panel=RUN_PANEL)] = "auto",
    fsdp: Annotated[bool, typer.Option("--fsdp", help="Shard the model over the torchrun processes "
                                       "(for models that do not fit one GPU).", rich_help_panel=RUN_PANEL)] = False,
    cache_dir: Annotated[
        Optional[Path], typer.Option("--cache-dir", help="Decoded clips (default: OUTPUT/clip_cache).",
                                     show_default=False, file_okay=False, rich_help_panel=RUN_PANEL),
    ] = None,
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
    from clapper_core.train import TrainConfig, train as run_training

    cfg = TrainConfig(
        data=data, output=output, model=from_model, video_root=video_root, stage=stage, lora=lora,
        lora_rank=lora_rank, lora_alpha=2 * lora_rank, train_vision=train_vision, vision_lr=vision_lr, steps=steps,
        epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr, warmup=warmup, weight_decay=weight_decay,
        save_every=save_every, resume=resume, seed=seed, device=device, precision=precision,
        gradient_checkpointing=grad_checkpointing, fsdp=fsdp, fps=fps, max_frames=max_frames,
        cache_dir=cache_dir, stop_after=stop_after, loss_average=loss_average,
    )  # fmt: skip
    main_rank = os.environ.get("RANK", "0") == "0"
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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss [cyan]{task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                TextColumn("lr {task.fields[lr]}"), TimeRemainingColumn(),
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
        fields = dict(loss=f"{s.loss:.4f}", tps=f"{s.tokens_per_s:,.0f}", lr=f"{s.lr:.2e}")
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("train", total=s.total, completed=s.step - 1, **fields)
            self._bar.update(self._task, completed=s.step, **fields)
        elif s.step % self.log_every == 0 or s.step == s.total:
            print(f"step {s.step}/{s.total}  loss {fields['loss']}  {fields['tps']} tok/s  lr {fields['lr']}  "
                  f"epoch {s.epoch:.2f}  eta {_duration(s.eta_s)}", file=sys.stderr, flush=True)


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
