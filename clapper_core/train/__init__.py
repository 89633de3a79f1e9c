"""`clapper train`: LLaVA-format data, the two Clapper training stages, checkpoints, metrics, plots.

    from clapper_core.train import TrainConfig, train
    train(TrainConfig(data="train.jsonl", output="runs/stage1", model="clapper-demo", stage=1))

Names load lazily so that `import clapper_core.train` does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config",
    "TrainResult": "trainer",
    "StepInfo": "trainer",
    "train": "trainer",
    "read_train_data": "data",
    "TrainData": "data",
    "TrainRecord": "data",
    "plot_metrics": "metrics",
    "read_metrics": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
