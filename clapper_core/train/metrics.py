"""The metrics log (one JSON object per optimizer step), the step meter behind it, and the loss-curve plot."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from clapper_core.errors import ConfigError, DataError


def peak_memory_mb(device_type: str) -> float:
    """The most memory this process has held: the GPU's allocator peak on CUDA, else the peak RSS."""
    if device_type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


class StepMeter:
    """Times each optimizer step and the part of it spent waiting for data; smooths the ETA.

    The ETA is the remaining steps times an exponential moving average of the step time
    (weight `smoothing` on the newest step), so it does not swing with one slow batch; the
    first step (workers starting, caches cold) only seeds the average.
    """

    def __init__(self, *, smoothing: float = 0.1):
        self.smoothing = smoothing
        self.start = time.perf_counter()
        self._step_start = self.start
        self.avg_step_s: float | None = None
        self.wait_s = 0.0  # of the current step

    def begin(self) -> None:
        self._step_start = time.perf_counter()
        self.wait_s = 0.0

    def waited(self, seconds: float) -> None:
        self.wait_s += seconds

    def end(self) -> float:
        """Close the step; returns its duration in seconds."""
        dt = max(time.perf_counter() - self._step_start, 1e-9)
        a = self.smoothing
        self.avg_step_s = dt if self.avg_step_s is None else (1 - a) * self.avg_step_s + a * dt
        return dt

    def eta(self, remaining_steps: int) -> float:
        return (self.avg_step_s or 0.0) * remaining_steps

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class MetricsLog:
    """Append-only JSONL; on resume, lines past the resumed step are dropped first."""

    def __init__(self, path: Path, *, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics log; a torn last line (a killed run) is ignored."""
    if not path.is_file():
        raise DataError(f"metrics log {path} not found: pass the metrics.jsonl in a training output folder")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_metrics(metrics: Path, out: Path, *, smooth: int = 20) -> Path:
    """Draw the loss (raw and a moving average) and the learning rate against the step, as a PNG."""
    rows = [r for r in read_metrics(metrics) if "loss" in r and "step" in r]
    if not rows:
        raise DataError(f"{metrics} holds no step with a loss: train for a few steps first")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("plotting needs matplotlib: pip install 'clapper[plot]'") from exc
    steps = [r["step"] for r in rows]
    loss = [r["loss"] for r in rows]
    k = max(1, min(smooth, len(loss) // 5 or 1))
    avg = [sum(loss[max(0, i - k + 1) : i + 1]) / len(loss[max(0, i - k + 1) : i + 1]) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(steps, loss, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
    ax.plot(steps, avg, color="tab:blue", linewidth=2, label=f"loss, mean of {k}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if "lr" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot(steps, [r["lr"] for r in rows], color="tab:orange", linewidth=1, label="learning rate")
        ax2.set_ylabel("learning rate", color="tab:orange")
    ax.legend(loc="upper right")
    ax.set_title(metrics.parent.name or "training")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
