"""The settings of one training run (`TrainConfig`), each default written once, validated when built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clapper_core.errors import ConfigError

STAGES = (1, 2)
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "bf16", "fp32")
LOSS_AVERAGES = ("token", "sample")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; validated when built."""

    data: Path  # JSON / JSONL in the LLaVA conversation format, a folder of them, or a glob
    output: Path  # folder for the model, checkpoints and metrics
    model: str = "clapper-demo"  # --from: a Clapper / LLaVA-OneVision directory, hub id, or clapper-demo
    video_root: Path | None = None  # video paths in `data` are relative to this (default: data's folder)
    stage: int = 1
    lora: bool = False  # stage 2: LoRA adapters instead of full LLM training
    lora_rank: int = 16
    lora_alpha: int = 32
    train_vision: bool = False  # stage 2: train the vision tower as well
    vision_lr: float | None = None  # with train_vision: the vision tower's peak learning rate (default: lr)
    frozen: tuple[str, ...] = ()  # parameter-name prefixes kept frozen whatever the stage trains
    steps: int | None = None  # optimizer steps; default: `epochs` passes over the data
    epochs: float = 1.0
    batch_size: int = 8  # examples per micro-batch, per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float | None = None  # peak learning rate; default 1e-3 for stage 1, 2e-5 for stage 2
    warmup: float = 0.03  # fraction of the steps spent warming up
    min_lr_ratio: float = 0.1  # the cosine ends at this fraction of the peak
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm (0: no clipping)
    save_every: int = 500  # checkpoint every N optimizer steps (0: only at the end)
    keep_checkpoints: int = 2
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp32
    gradient_checkpointing: bool = False
    fsdp: bool = False  # shard the model over the processes (models that do not fit one GPU)
    fps: float = 1.0  # video sampling, as `clapper ask` samples
    # 32, not the 96 that ask and caption sample: training keeps every frame's activations for the backward
    # pass, and a batch holds batch_size videos, so 96 frames would need about 3x the memory per step.
    max_frames: int = 32
    max_length: int | None = None  # cut token sequences longer than this (never the video)
    # How answer tokens are averaged into the loss. "token": every answer token weighs the same, so a
    # long answer (a caption) outweighs a one-word one. "sample": each record's tokens are averaged
    # first, so every record weighs the same, whatever the length of its answer.
    loss_average: str = "token"
    cache_dir: Path | None = None  # decoded clips on disk, bounded by cache_max_gb (default: no cache)
    cache_max_gb: float = 10.0
    num_workers: int = 2  # DataLoader processes that decode ahead (0: decode in the training process)
    prefetch: int = 2  # batches each worker prepares ahead
    stop_after: int | None = None  # leave after this many steps in this run (the schedule is unchanged)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"--stage {self.stage} is not a training stage: use 1 (perceiver + projector) or 2")
        if self.lora and self.stage != 2:
            raise ConfigError("--lora trains the LLM, which only stage 2 does: add --stage 2")
        if self.train_vision and self.stage != 2:
            raise ConfigError("--train-vision is a stage 2 option: add --stage 2")
        for name in ("batch_size", "grad_accum", "max_frames", "lora_rank", "lora_alpha"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.epochs <= 0:
            raise ConfigError(f"--epochs must be positive, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.vision_lr is not None and not self.train_vision:
            raise ConfigError("--vision-lr is the vision tower's learning rate, which only trains with --train-vision")
        if self.vision_lr is not None and not self.vision_lr > 0:
            raise ConfigError(f"--vision-lr must be positive, got {self.vision_lr}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.save_every < 0:
            raise ConfigError(f"--save-every must be 0 (only at the end) or more, got {self.save_every}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.fsdp and self.lora:
            raise ConfigError("--fsdp with --lora is not supported: LoRA trains few weights, leave out --fsdp")
        if self.fsdp and (self.save_every or self.stop_after or self.resume):
            raise ConfigError("--fsdp runs save the model at the end only: add --save-every 0 "
                              "(and leave out --resume / --stop-after)")
        if self.loss_average not in LOSS_AVERAGES:
            raise ConfigError(f"--loss-average {self.loss_average!r} is not one of {', '.join(LOSS_AVERAGES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.num_workers < 0 or self.prefetch < 1:
            raise ConfigError(f"--num-workers must be 0 or more and --prefetch at least 1, got {self.num_workers} "
                              f"and {self.prefetch}")
        if self.cache_max_gb < 0:
            raise ConfigError(f"--cache-max-gb must be 0 or more, got {self.cache_max_gb}")

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.stage == 1 else 2e-5)

    def settings(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        keep = ("model", "stage", "lora", "lora_rank", "lora_alpha", "train_vision", "vision_lr", "batch_size",
                "grad_accum", "seed", "fps", "max_frames", "max_length", "fsdp", "frozen", "loss_average")
        return {k: _jsonable(list(v) if isinstance(v := getattr(self, k), tuple) else v) for k in keep}


def _jsonable(v: Any) -> Any:
    return str(v) if isinstance(v, Path) else v


def uses_bf16(precision: str, device_type: str) -> bool:
    """Whether the forward pass runs under bf16 autocast: asked for, or `auto` on a GPU."""
    return precision == "bf16" or (precision == "auto" and device_type == "cuda")
