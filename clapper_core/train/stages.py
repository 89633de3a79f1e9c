"""What a stage trains and how the model is held: trainable parameters, LoRA, process wrapping, saving.

Processes are wrapped with torch's own DistributedDataParallel (gradients averaged, `no_sync` for
accumulation) or FullyShardedDataParallel (`--fsdp`, for models that do not fit one GPU); see
`clapper_core.distributed` for why torch directly rather than accelerate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from clapper_core.distributed import DistInfo
from clapper_core.errors import ConfigError
from clapper_core.train.config import LORA_TARGETS, TrainConfig


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


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters, with the vision tower in a group of its own when it has its own lr.

    The schedule scales every group's peak alike; the first group is the one progress reports."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.vision_lr is None:
        return [{"params": [p for _, p in trainable]}]
    vision = [p for n, p in trainable if "vision_tower" in n]
    rest = [p for n, p in trainable if "vision_tower" not in n]
    return [{"params": rest}, {"params": vision, "lr": cfg.vision_lr}]


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


def load_for_training(cfg: TrainConfig, notice: Callable[[str], None]):
    from clapper_core.model import LoadConfig, load_model

    loaded = load_model(LoadConfig(model=cfg.model, quant="fp32", device="cpu"))
    for msg in loaded.notices:
        if "untrained" not in msg.lower():  # training is what fixes that
            notice(msg)
    return loaded.model, loaded.processor


def sampling_for(cfg: TrainConfig, mcfg):
    from clapper_core.video import SamplingConfig

    return SamplingConfig(fps=cfg.fps, max_frames=cfg.max_frames, segment_size=mcfg.segment_size)


def wrap_for_processes(model, cfg: TrainConfig, info: DistInfo, device: torch.device):
    if not info.is_distributed:
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


def fsdp_full_state(wrapped) -> dict:
    """The unsharded weights, gathered on rank 0 (CPU); other ranks get an empty dict."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT,
                              FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
        return wrapped.state_dict()
