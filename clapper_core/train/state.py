"""Checkpoints that `--resume` continues exactly: weights, optimizer, scheduler, data position, RNG.

    out/checkpoints/step-000200/
        trainable.safetensors   the parameters that train (frozen ones come from --from again)
        state.pt                optimizer, scheduler and every RNG state
        trainer.json            step, data position, the run's settings (checked on resume)

A checkpoint directory is written under a temporary name and renamed, so a run killed mid-save
never leaves a half checkpoint that resume would pick.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from clapper_core.errors import DataError


@dataclass(frozen=True)
class DataPosition:
    """Where the data stands: epoch, and the number of this epoch's batches the loop has consumed.

    Counted in the training loop, not in the loader, so batches that workers had prefetched but
    the loop had not used yet are made again on resume."""

    epoch: int = 0
    batch: int = 0

    def advance(self, batches_per_epoch: int) -> DataPosition:
        if self.batch + 1 >= batches_per_epoch:
            return DataPosition(self.epoch + 1, 0)
        return DataPosition(self.epoch, self.batch + 1)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    position: DataPosition,
    settings: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint `step-<step>` under `directory`; keep only the newest `keep` ones."""
    final = directory / f"step-{step:06d}"
    tmp = directory / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
        tmp / "state.pt",
    )
    meta = {"step": step, "position": asdict(position), "settings": settings}
    (tmp / "trainer.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints under `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("step-*") if (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


@dataclass
class Resumed:
    step: int
    position: DataPosition
    settings: dict[str, Any]


def load_checkpoint(path: Path, *, model: torch.nn.Module, optimizer, scheduler) -> Resumed:
    """Restore everything `save_checkpoint` wrote, in place; returns the step and data position."""
    meta = json.loads((path / "trainer.json").read_text())
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing or any(n not in params for n in weights):
        raise DataError(
            f"checkpoint {path} does not match this model ({len(missing)} trainable parameters missing): "
            "resume with the same --from, --stage and --lora as the run that wrote it"
        )
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    state = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if "batch" not in meta["position"]:
        raise DataError(f"checkpoint {path} counts its data position in records, as clapper before batched loading "
                        "did: it cannot be continued exactly; start a new --output")
    return Resumed(step=meta["step"], position=DataPosition(**meta["position"]), settings=meta["settings"])
