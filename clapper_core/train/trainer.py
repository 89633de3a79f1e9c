"""`clapper train`: the two training stages of Clapper, on one process or many (torchrun).

    stage 1   TimePerceiver + projector train; vision tower and LLM frozen
    stage 2   the LLM trains too (full, or LoRA adapters on q/k/v/o with `lora=True`);
              the vision tower stays frozen unless `train_vision=True`

    from clapper_core.train import TrainConfig, train
    result = train(TrainConfig(data="train.jsonl", output="runs/s1", model="clapper-demo", stage=1))

The output folder gets the trained model (loadable with `load_model`, LoRA merged in),
`metrics.jsonl` (one line per optimizer step), `checkpoints/step-NNNNNN/` every `save_every`
steps, and `train_config.json`. Started again with `resume=True`, a run continues from its
newest checkpoint exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapper_core.errors import ConfigError, DataError, DeviceError
from clapper_core.train.batches import IGNORE, ExampleBuilder, collate
from clapper_core.train.data import ClipCache, TrainData, read_train_data
from clapper_core.train.metrics import MetricsLog
from clapper_core.train.schedule import make_scheduler
from clapper_core.train.state import DataPosition, list_checkpoints, load_checkpoint, save_checkpoint

STAGES = (1, 2)
PRECISIONS = ("auto", "bf16", "fp32")
LOSS_AVERAGES = ("token", "sample")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; validated when built."""

    data: Path  # JSON / JSONL in the LLaVA conversation format
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
    max_frames: int = 32
    max_length: int | None = None  # cut token sequences longer than this (never the video)
    # How answer tokens are averaged into the loss. "token": every answer token weighs the same, so a
    # long answer (a caption) outweighs a one-word one. "sample": each record's tokens are averaged
    # first, so every record weighs the same, whatever the length of its answer.
    loss_average: str = "token"
    cache_dir: Path | None = None  # decoded clips on disk (default: <output>/clip_cache)
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
        if self.device not in ("auto", "cuda", "cpu"):
            raise ConfigError(f"--device {self.device!r} is not one of auto, cuda, cpu")

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


@dataclass
class StepInfo:
    """What the progress display shows after each optimizer step."""

    step: int  # 1-based, counting resumed steps
    total: int
    loss: float
    lr: float
    tokens_per_s: float  # all tokens (prompt + answer) through the model, all processes
    elapsed_s: float  # this run
    eta_s: float
    epoch: float


@dataclass
class TrainResult:
    output: Path
    steps: int  # optimizer steps done in total (resumed ones included)
    final_loss: float | None
    stopped_early: bool  # `stop_after` hit before the last step
    skipped_records: int
    num_records: int
    trainable_params: int
    total_params: int
    weights_digest: str  # sha256 of the trained parameters: the same on every rank of a data-parallel run


# --- distributed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on GPUs, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local)


def _resolve_device(choice: str, d: Dist) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
        if d.local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {d.local_rank} of this node has no GPU of its own ({torch.cuda.device_count()} visible): "
                "start at most one process per GPU (torchrun --nproc-per-node), or train on the CPU with --device cpu"
            )
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


# --- what trains ---------------------------------------------------------------------------


def select_trainable(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Freeze everything, then unfreeze what this stage trains (LoRA adapters stay trainable)."""
    inner = model.model
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name  # peft's adapters, when present
    parts = [inner.multi_modal_projector]
    if inner.time_perceiver is not None:
        parts.append(inner.time_perceiver)
    if cfg.stage == 2 and not cfg.lora:
        parts += [inner.language_model, model.lm_head]
    if cfg.train_vision:
        parts.append(inner.vision_tower)
    for part in parts:
        for p in part.parameters():
            p.requires_grad = True
    for name, p in model.named_parameters():
        if name.startswith(cfg.frozen):
            p.requires_grad = False


def add_lora(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """LoRA adapters (peft) on the LLM's attention projections, injected in place."""
    from peft import LoraConfig, inject_adapter_in_model

    lcfg = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=0.0,
        target_modules=r".*language_model.*\.(" + "|".join(LORA_TARGETS) + ")",
    )
    return inject_adapter_in_model(lcfg, model)


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every LoRA adapter into its base Linear, leaving a plain Clapper model."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model


# --- data order ----------------------------------------------------------------------------


class Sampler:
    """A fresh permutation of the records per epoch (seeded), dealt to the processes in turn.

    The position (epoch, cursor) is all a checkpoint needs to continue with the same batches.
    """

    def __init__(self, n: int, *, seed: int, batch_size: int, d: Dist, position: DataPosition):
        self.n, self.seed, self.batch_size, self.d = n, seed, batch_size, d
        self.position = position
        self._perm = self._permutation(position.epoch)

    def _permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def next_batch(self) -> list[int]:
        """This process's indices of the next global batch (batch_size * world records)."""
        need = self.batch_size * self.d.world
        out: list[int] = []
        while len(out) < need:
            if self.position.cursor >= self.n:
                self.position = DataPosition(self.position.epoch + 1, 0)
                self._perm = self._permutation(self.position.epoch)
            take = min(need - len(out), self.n - self.position.cursor)
            out += self._perm[self.position.cursor : self.position.cursor + take]
            self.position = DataPosition(self.position.epoch, self.position.cursor + take)
        return out[self.d.rank :: self.d.world]

    @property
    def epoch(self) -> float:
        return self.position.epoch + self.position.cursor / self.n


# --- the run -------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run (or resume) one training stage; see the module docstring."""
    notice = on_notice or (lambda msg: None)
    d = setup_distributed(
        "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    device = _resolve_device(cfg.device, d)
    output = Path(cfg.output)
    ckpt_dir = output / "checkpoints"
    resume_from = list_checkpoints(ckpt_dir)[-1] if cfg.resume and list_checkpoints(ckpt_dir) else None
    if cfg.resume and resume_from is None:
        notice(f"no checkpoint under {ckpt_dir}: starting from the beginning")
    _seed_everything(cfg.seed + d.rank)

    data = read_train_data(cfg.data, video_root=cfg.video_root)
    if data.skipped:
        for line in data.describe_skipped():
            notice(line)

    model, processor = _load(cfg, notice)
    sampling = _sampling(cfg, model.config)
    cache = ClipCache(sampling, cfg.cache_dir if cfg.cache_dir is not None else output / "clip_cache")
    builder = ExampleBuilder(processor, cache, max_length=cfg.max_length)

    if cfg.lora:
        model = add_lora(model, cfg)
    select_trainable(model, cfg)
    model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if not cfg.train_vision:
        model.model.vision_tower.eval()  # frozen: no dropout noise in its features
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_train, n_total = sum(p.numel() for p in trainable), sum(p.numel() for p in model.parameters())
    notice(f"stage {cfg.stage}: training {n_train:,} of {n_total:,} parameters on {device}"
           + (f", {d.world} processes" if d.world > 1 else ""))

    wrapped = _wrap_distributed(model, cfg, d, device)
    groups = _param_groups(wrapped, cfg)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    per_step = cfg.batch_size * cfg.grad_accum * d.world
    total = cfg.steps or max(1, math.ceil(cfg.epochs * len(data.records) / per_step))
    scheduler = make_scheduler(optimizer, total=total, warmup=int(cfg.warmup * total), min_ratio=cfg.min_lr_ratio)

    step, position = 0, DataPosition()
    if resume_from is not None:
        resumed = load_checkpoint(resume_from, model=model, optimizer=optimizer, scheduler=scheduler)
        _check_resume(resumed.settings, cfg, resume_from)
        step, position = resumed.step, resumed.position
        notice(f"resumed from {resume_from} (step {step} of {total})")
    sampler = Sampler(len(data.records), seed=cfg.seed, batch_size=cfg.batch_size, d=d, position=position)
    metrics = MetricsLog(output / "metrics.jsonl", resume_step=step if resume_from else None) if d.main else None
    if d.main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "train_config.json").write_text(
            json.dumps({k: _jsonable(v) for k, v in asdict(cfg).items()}, indent=2) + "\n"
        )

    autocast = _autocast(cfg, device)
    pad_id = processor.tokenizer.pad_token_id
    start, done_here, loss_value = time.perf_counter(), 0, None
    stop_at = total if cfg.stop_after is None else min(total, step + cfg.stop_after)
    while step < stop_at:
        t0 = time.perf_counter()
        loss_sum, tokens = torch.zeros((), device=device), 0
        for micro in range(cfg.grad_accum):
            batch = collate([builder(data.records[i]) for i in sampler.next_batch()], pad_id=pad_id)
            tokens += int(batch["attention_mask"].sum())
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            sync = micro == cfg.grad_accum - 1 or d.world == 1
            with (nullcontext() if sync else wrapped.no_sync()), autocast:
                loss = _forward_loss(wrapped, batch, cfg.loss_average) / cfg.grad_accum
            loss.backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        done_here += 1
        loss_value, tokens = _reduce(loss_sum, tokens, d)
        lr = scheduler.get_last_lr()[0]
        if metrics is not None:
            dt = time.perf_counter() - t0
            metrics.write({"step": step, "loss": round(loss_value, 6), "lr": lr, "epoch": round(sampler.epoch, 4),
                           "tokens": tokens, "tokens_per_s": round(tokens / dt, 1), "time": round(time.time(), 3)})
        if on_step is not None and d.main:
            elapsed = time.perf_counter() - start
            eta = elapsed / done_here * (stop_at - step)
            on_step(StepInfo(step, total, loss_value, lr, tokens / (time.perf_counter() - t0), elapsed, eta,
                             sampler.epoch))
        if cfg.save_every and step % cfg.save_every == 0 and step < total:
            _checkpoint(model, optimizer, scheduler, step, sampler.position, cfg, d, ckpt_dir)

    finished = step >= total
    digest = weights_digest(model)
    if not finished:
        _checkpoint(model, optimizer, scheduler, step, sampler.position, cfg, d, ckpt_dir)
        notice(f"stopped after step {step} of {total}; continue with --resume")
    else:
        full = _fsdp_full_state(wrapped) if cfg.fsdp else None  # a collective: every rank takes part
        if d.main:
            save_model(model, processor, output, lora=cfg.lora, checkpointing=cfg.gradient_checkpointing,
                       state_dict=full)
    _barrier(d)
    return TrainResult(
        output=output,
        steps=step,
        final_loss=loss_value,
        stopped_early=not finished,
        skipped_records=len(data.skipped),
        num_records=len(data.records),
        trainable_params=n_train,
        total_params=n_total,
        weights_digest=digest,
    )


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters, with the vision tower in a group of its own when it has its own lr.

    The schedule scales every group's peak alike; the first group is the one progress reports."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.vision_lr is None:
        return [{"params": [p for _, p in trainable]}]
    vision = [p for n, p in trainable if "vision_tower" in n]
    rest = [p for n, p in trainable if "vision_tower" not in n]
    return [{"params": rest}, {"params": vision, "lr": cfg.vision_lr}]


def _forward_loss(model: torch.nn.Module, batch: dict[str, Any], average: str) -> torch.Tensor:
    """The batch's answer loss, averaged per token (the model's own loss) or per record."""
    if average == "token":
        return model(**batch, use_cache=False).loss
    labels = batch["labels"]
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits  # (B, L, V)
    return per_sample_loss(logits, labels)


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged over each record's answer tokens, then over the records.

    logits: (B, L, V); labels: (B, L), IGNORE where no loss is taken. A record without
    answer tokens (cut away by max_length) counts as no record.
    """
    logits, labels = logits[:, :-1].float(), labels[:, 1:]  # position i predicts token i + 1
    tok = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    n = (labels != IGNORE).sum(1)  # (B,) answer tokens per record
    per_record = tok.sum(1) / n.clamp(min=1)  # (B,)
    has = n > 0
    return (per_record * has).sum() / has.sum().clamp(min=1)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the trainable parameters' names and bytes (fp32, CPU)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_model(model: torch.nn.Module, processor, output: Path, *, lora: bool, checkpointing: bool = False,
               state_dict: dict | None = None) -> None:
    """Write a plain Clapper model folder (LoRA merged) that `load_model` reads.

    `state_dict` replaces the model's own weights (FSDP gathers them to rank 0 this way).
    """
    from transformers.utils import logging as hf_logging

    if lora:
        model = merge_lora(model)
    model = model.to("cpu").eval()
    for p in model.parameters():
        p.requires_grad = True
    if checkpointing:
        model.gradient_checkpointing_disable()
    hf_logging.disable_progress_bar()  # its bars would go to stderr between ours
    try:
        model.save_pretrained(str(output), state_dict=state_dict)
    finally:
        hf_logging.enable_progress_bar()
    processor.save_pretrained(output)


def _load(cfg: TrainConfig, notice: Callable[[str], None]):
    from clapper_core.model import LoadConfig, load_model

    loaded = load_model(LoadConfig(model=cfg.model, quant="fp32", device="cpu"))
    for msg in loaded.notices:
        if "untrained" not in msg.lower():  # training is what fixes that
            notice(msg)
    return loaded.model, loaded.processor


def _sampling(cfg: TrainConfig, mcfg):
    from clapper_core.video import SamplingConfig

    return SamplingConfig(fps=cfg.fps, max_frames=cfg.max_frames, segment_size=mcfg.segment_size)


def _wrap_distributed(model, cfg: TrainConfig, d: Dist, device: torch.device):
    if d.world == 1:
        if cfg.fsdp:
            raise ConfigError("--fsdp shards a model over several processes: launch with torchrun --nproc-per-node N")
        return model
    if cfg.fsdp:
        if device.type != "cuda":
            raise ConfigError("--fsdp shards over GPUs and none is in use: leave out --fsdp on the CPU")
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        layers = {type(m) for m in model.modules() if type(m).__name__ in model._no_split_modules}
        return FSDP(model, auto_wrap_policy=ModuleWrapPolicy(layers), use_orig_params=True,
                    device_id=device if device.type == "cuda" else None)
    from torch.nn.parallel import DistributedDataParallel as DDP

    # Segments of one frame skip the perceiver, so some parameters may get no gradient in a step.
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)


def _fsdp_full_state(wrapped) -> dict:
    """The unsharded weights, gathered on rank 0 (CPU); other ranks get an empty dict."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT,
                              FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
        return wrapped.state_dict()


def _checkpoint(model, optimizer, scheduler, step, position, cfg, d: Dist, ckpt_dir: Path) -> None:
    assert not cfg.fsdp, "TrainConfig rejects checkpoints of --fsdp runs"
    if d.main:
        save_checkpoint(ckpt_dir, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                        position=position, settings=cfg.settings(), keep=cfg.keep_checkpoints)
    _barrier(d)


def _check_resume(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = cfg.settings()
    # A setting newer than the checkpoint is read as its default, which is what that run used.
    defaults = TrainConfig(data=cfg.data, output=cfg.output).settings()
    diff = [k for k in now if saved.get(k, defaults[k]) != now[k]]
    if diff:
        k = diff[0]
        raise DataError(
            f"checkpoint {path} was written with {k}={saved.get(k)!r}, this run has {k}={now[k]!r}: "
            "resume with the same settings, or start a new --output"
        )


def _autocast(cfg: TrainConfig, device: torch.device):
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _reduce(loss_sum: torch.Tensor, tokens: int, d: Dist) -> tuple[float, int]:
    if d.world == 1:
        return float(loss_sum), tokens
    import torch.distributed as dist

    t = torch.stack([loss_sum.float(), torch.tensor(float(tokens), device=loss_sum.device)])
    dist.all_reduce(t)
    return float(t[0]) / d.world, int(t[1])


def _barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

