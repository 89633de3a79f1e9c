"""`clapper train`: the two training stages of Clapper, on one process or many (torchrun).

    stage 1   TimePerceiver + projector train; vision tower and LLM frozen
    stage 2   the LLM trains too (full, or LoRA adapters on q/k/v/o with `lora=True`);
              the vision tower stays frozen unless `train_vision=True`

    from clapper_core.train import TrainConfig, train
    result = train(TrainConfig(data="train.jsonl", output="runs/s1", model="clapper-demo", stage=1))

Videos are decoded in DataLoader workers (`clapper_core.train.loader`) while the model trains.
The output folder gets the trained model (loadable with `load_model`, LoRA merged in),
`metrics.jsonl` (one line per optimizer step: loss, samples/s, tokens/s, time waiting on data,
peak memory), `checkpoints/step-NNNNNN/` every `save_every` steps and on Ctrl-C, and
`train_config.json`. Started again with `resume=True`, a run continues from its newest
checkpoint exactly as if it had never stopped, workers or not.

Rank, world size and device come from `clapper_core.distributed`; processes are wrapped with
torch's DDP / FSDP (`clapper_core.train.stages`; the reason for torch over accelerate is written
in `clapper_core.distributed`); mixed precision is `torch.autocast`; seeding is accelerate's `set_seed`.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from clapper_core.distributed import DistInfo, all_reduce_sum, barrier, dist_info, init_process_group, select_device
from clapper_core.errors import DataError
from clapper_core.hardware import decode_threads
from clapper_core.train.batches import IGNORE, ExampleBuilder
from clapper_core.train.config import LOSS_AVERAGES, PRECISIONS, STAGES, TrainConfig, _jsonable, uses_bf16
from clapper_core.train.data import ClipCache, TrainData, read_train_data
from clapper_core.train.loader import Batch, LengthGroupedBatches, VideoExamples, estimate_length, make_loader
from clapper_core.train.metrics import MetricsLog, StepMeter, peak_memory_mb
from clapper_core.train.schedule import make_scheduler
from clapper_core.train.stages import (
    add_lora, fsdp_full_state, load_for_training, param_groups, sampling_for, save_model, select_trainable,
    weights_digest, wrap_for_processes,
)  # fmt: skip
from clapper_core.train.state import DataPosition, list_checkpoints, load_checkpoint, save_checkpoint

__all__ = ["LOSS_AVERAGES", "PRECISIONS", "STAGES", "StepInfo", "TrainConfig", "TrainResult", "per_sample_loss",
           "train", "weights_digest"]


@dataclass
class StepInfo:
    """What the progress display shows after each optimizer step."""

    step: int  # 1-based, counting resumed steps
    total: int
    loss: float
    lr: float
    tokens_per_s: float  # all tokens (prompt + answer) through the model, all processes
    samples_per_s: float  # records trained on, all processes
    data_wait: float  # share of the step spent waiting for the loader (0..1)
    peak_mem_mb: float  # this process: GPU allocator peak on CUDA, peak RSS on the CPU
    elapsed_s: float  # this run
    eta_s: float  # smoothed
    epoch: float


@dataclass
class TrainResult:
    output: Path
    steps: int  # optimizer steps done in total (resumed ones included)
    final_loss: float | None
    stopped_early: bool  # `stop_after` hit before the last step
    skipped_records: int  # while reading the annotations and, summed over ranks, in the loader's workers
    num_records: int
    trainable_params: int
    total_params: int
    weights_digest: str  # sha256 of the trained parameters: the same on every rank of a data-parallel run


@dataclass
class _Run:
    """Everything the loop needs, set up once."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    model: torch.nn.Module
    wrapped: torch.nn.Module
    processor: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    params: list[torch.nn.Parameter]
    data: TrainData
    total: int
    batches_per_epoch: int
    step: int = 0
    position: DataPosition = DataPosition()
    metrics: MetricsLog | None = None
    skipped_in_loader: int = 0
    counts: tuple[int, int] = (0, 0)  # trainable, total parameters
    told: int = 0  # loader skips reported so far
    stop_at: int = 0  # the step this run leaves at

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.cfg.output) / "checkpoints"

    @property
    def epoch(self) -> float:
        return self.position.epoch + self.position.batch / self.batches_per_epoch


def train(
    cfg: TrainConfig,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run (or resume) one training stage; see the module docstring.

    Ctrl-C (SIGINT) finishes the optimizer step in progress, saves a checkpoint there, says so
    through `on_notice`, and raises KeyboardInterrupt; a second Ctrl-C stops at once."""
    notice = on_notice or (lambda msg: None)
    run = _setup(cfg, notice)
    info = run.info
    with _StopOnInterrupt() as stop:
        loss_value = _loop(run, stop, on_step, notice)
    finished = run.step >= run.total
    digest = weights_digest(run.model)
    if not finished:
        _checkpoint(run)
        notice(f"stopped after step {run.step} of {run.total}; continue with --resume")
    else:
        full = fsdp_full_state(run.wrapped) if cfg.fsdp else None  # a collective: every rank takes part
        if info.is_main:
            save_model(run.model, run.processor, Path(cfg.output), lora=cfg.lora,
                       checkpointing=cfg.gradient_checkpointing, state_dict=full)
    skipped_loader = int(all_reduce_sum([run.skipped_in_loader], info)[0])
    barrier(info)
    return TrainResult(output=Path(cfg.output), steps=run.step, final_loss=loss_value, stopped_early=not finished,
                       skipped_records=run.data.skipped_count + skipped_loader, num_records=len(run.data.records),
                       trainable_params=run.counts[0], total_params=run.counts[1], weights_digest=digest)


def _setup(cfg: TrainConfig, notice: Callable[[str], None]) -> _Run:
    from accelerate.utils import set_seed  # python, numpy, torch and every GPU

    info = dist_info()
    device = torch.device(select_device(info, cfg.device))
    init_process_group(info, str(device))
    output = Path(cfg.output)
    resume_from = list_checkpoints(output / "checkpoints")[-1:] if cfg.resume else []
    if cfg.resume and not resume_from:
        notice(f"no checkpoint under {output / 'checkpoints'}: starting from the beginning")
    set_seed(cfg.seed + info.rank)
    data = read_train_data(cfg.data, video_root=cfg.video_root)
    for line in data.describe_skipped():
        notice(line)
    model, processor = load_for_training(cfg, notice)
    wrapped, counts = _prepare_model(model, cfg, info, device, notice)
    groups = param_groups(wrapped, cfg)
    optimizer = torch.optim.AdamW(groups, lr=cfg.peak_lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    bpe = math.ceil(len(data.records) / (cfg.batch_size * info.world_size))
    total = cfg.steps or max(1, math.ceil(cfg.epochs * bpe / cfg.grad_accum))
    scheduler = make_scheduler(optimizer, total=total, warmup=int(cfg.warmup * total), min_ratio=cfg.min_lr_ratio)
    run = _Run(cfg, info, device, model, wrapped, processor, optimizer, scheduler,
               [p for g in groups for p in g["params"]], data, total, bpe, counts=counts)  # fmt: skip
    if resume_from:
        resumed = load_checkpoint(resume_from[0], model=model, optimizer=optimizer, scheduler=scheduler)
        _check_resume(resumed.settings, cfg, resume_from[0])
        run.step, run.position = resumed.step, resumed.position
        notice(f"resumed from {resume_from[0]} (step {run.step} of {total})")
    if info.is_main:
        run.metrics = MetricsLog(output / "metrics.jsonl", resume_step=run.step if resume_from else None)
        (output / "train_config.json").write_text(
            json.dumps({k: _jsonable(v) for k, v in asdict(cfg).items()}, indent=2) + "\n")
    return run


def _prepare_model(model, cfg: TrainConfig, info: DistInfo, device: torch.device, notice):
    if cfg.lora:
        model = add_lora(model, cfg)
    select_trainable(model, cfg)
    model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    if not cfg.train_vision:
        model.model.vision_tower.eval()  # frozen: no dropout noise in its features
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    notice(f"stage {cfg.stage}: training {n_train:,} of {n_total:,} parameters on {device}"
           + (f", {info.world_size} processes" if info.is_distributed else "")
           + (f", {cfg.num_workers} data workers" if cfg.num_workers else ""))
    return wrap_for_processes(model, cfg, info, device), (n_train, n_total)


def build_loader(cfg: TrainConfig, processor, records, *, info: DistInfo, position: DataPosition, pin: bool):
    """The run's DataLoader, from `position` on: this rank's length-grouped batches, built in workers."""
    sampling = sampling_for(cfg, processor.config)
    cache = ClipCache(sampling, cfg.cache_dir, max_bytes=int(cfg.cache_max_gb * 2**30), shares=cfg.num_workers,
                      threads=decode_threads(cfg.num_workers))
    builder = ExampleBuilder(processor, cache, max_length=cfg.max_length)
    seg = sampling.segment_size
    per_frame = processor.count([seg]) / seg
    lengths = [estimate_length(r, fps=cfg.fps, max_frames=cfg.max_frames, tokens_per_frame=per_frame)
               for r in records]
    sampler = LengthGroupedBatches(lengths, batch_size=cfg.batch_size, seed=cfg.seed, rank=info.rank,
                                   world=info.world_size, epoch=position.epoch, start=position.batch)
    return make_loader(VideoExamples(records, builder), sampler, pad_id=processor.tokenizer.pad_token_id,
                       num_workers=cfg.num_workers, prefetch=cfg.prefetch, pin_memory=pin)


def _loop(run: _Run, stop: _StopOnInterrupt, on_step, notice) -> float | None:
    cfg, info = run.cfg, run.info
    loader = build_loader(cfg, run.processor, run.data.records, info=info, position=run.position,
                          pin=run.device.type == "cuda")
    batches, meter, loss_value = iter(loader), StepMeter(), None
    run.stop_at = run.total if cfg.stop_after is None else min(run.total, run.step + cfg.stop_after)
    try:
        while run.step < run.stop_at:
            meter.begin()
            loss_sum, tokens, samples = _one_step(run, batches, meter, notice)
            run.step += 1
            dt = meter.end()
            loss_sum, tokens, samples, stopping = all_reduce_sum([loss_sum, tokens, samples, stop.requested], info)
            loss_value = loss_sum / info.world_size
            _report(run, meter, dt, loss_value, tokens, samples, on_step)
            if stopping:
                _interrupted(run, notice)
            if cfg.save_every and run.step % cfg.save_every == 0 and run.step < run.total:
                _checkpoint(run)
    finally:
        del batches  # shuts the workers down
    return loss_value


def _one_step(run: _Run, batches: Iterator[Batch], meter: StepMeter, notice) -> tuple[float, int, int]:
    """One optimizer step over `grad_accum` micro-batches; returns (loss, tokens, records) of this rank."""
    cfg, info = run.cfg, run.info
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16) \
        if uses_bf16(cfg.precision, run.device.type) else nullcontext()
    loss_sum, tokens, samples, micro = torch.zeros((), device=run.device), 0, 0, 0
    while micro < cfg.grad_accum:
        t0 = time.perf_counter()
        batch = next(batches)
        meter.waited(time.perf_counter() - t0)
        run.position = run.position.advance(run.batches_per_epoch)
        _count_skipped(run, batch, notice)
        empty = all_reduce_sum([batch.tensors is None], info)[0] if info.is_distributed else batch.tensors is None
        if empty:  # every rank leaves a micro-batch out when one rank has nothing left of it
            continue
        t = {k: v.to(run.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.tensors.items()}
        tokens += int(batch.tensors["attention_mask"].sum())
        samples += batch.size
        sync = micro == cfg.grad_accum - 1 or not info.is_distributed
        with (nullcontext() if sync else run.wrapped.no_sync()), autocast:
            loss = _forward_loss(run.wrapped, t, cfg.loss_average) / cfg.grad_accum
        loss.backward()
        loss_sum += loss.detach()
        micro += 1
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return float(loss_sum), tokens, samples


def _count_skipped(run: _Run, batch: Batch, notice) -> None:
    run.skipped_in_loader += len(batch.skipped)
    for s in batch.skipped:
        if run.told < 10:
            notice(f"{s.source}:{s.line}: skipped: {s.reason}")
        elif run.told == 10:
            notice("... more records with unusable videos are skipped; the count comes at the end")
        run.told += 1


def _report(run: _Run, meter: StepMeter, dt: float, loss: float, tokens: float, samples: float, on_step) -> None:
    lr = run.scheduler.get_last_lr()[0]
    info = StepInfo(step=run.step, total=run.total, loss=loss, lr=lr, tokens_per_s=tokens / dt,
                    samples_per_s=samples / dt, data_wait=min(1.0, meter.wait_s / dt),
                    peak_mem_mb=peak_memory_mb(run.device.type), elapsed_s=meter.elapsed,
                    eta_s=meter.eta(run.stop_at - run.step), epoch=run.epoch)
    if run.metrics is not None:
        run.metrics.write({"step": run.step, "loss": round(loss, 6), "lr": lr, "epoch": round(run.epoch, 4),
                           "tokens": int(tokens), "samples": int(samples), "tokens_per_s": round(info.tokens_per_s, 1),
                           "samples_per_s": round(info.samples_per_s, 2), "data_wait_s": round(meter.wait_s, 4),
                           "data_wait": round(info.data_wait, 4), "peak_mem_mb": round(info.peak_mem_mb, 1),
                           "time": round(time.time(), 3)})
    if on_step is not None and run.info.is_main:
        on_step(info)


def _interrupted(run: _Run, notice) -> None:
    if run.cfg.fsdp:
        notice(f"interrupted after step {run.step} of {run.total}: --fsdp runs save at the end only, nothing saved")
    else:
        path = _checkpoint(run)
        notice(f"interrupted: saved a checkpoint at step {run.step} of {run.total} ({path}); "
               "continue with the same command and --resume")
    raise KeyboardInterrupt


class _StopOnInterrupt:
    """While active, the first SIGINT only asks the loop to stop after the step in progress."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:  # pressed twice: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _checkpoint(run: _Run) -> Path:
    assert not run.cfg.fsdp, "TrainConfig rejects checkpoints of --fsdp runs"
    path = run.ckpt_dir / f"step-{run.step:06d}"
    if run.info.is_main:
        path = save_checkpoint(run.ckpt_dir, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                               step=run.step, position=run.position, settings=run.cfg.settings(),
                               keep=run.cfg.keep_checkpoints)
    barrier(run.info)
    return path


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


