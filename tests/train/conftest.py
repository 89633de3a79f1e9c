"""Fixtures of the training tests: a small synthetic dataset and quick training configs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """12 synthetic videos (seed 3) with train.jsonl (one multi-turn record per video) and qa.jsonl."""
    from clapper_core.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth"), num_videos=12, seed=3, multi_turn=True)


@pytest.fixture
def quick_config(synth_data, tiny_model_dir, tmp_path):
    """A TrainConfig factory: a few steps of stage 1 on the tiny model, overridable."""
    from clapper_core.train import TrainConfig

    def make(**kw):
        base = dict(data=synth_data.train_file, output=tmp_path / "run", model=str(tiny_model_dir), stage=1,
                    steps=4, batch_size=4, lr=3e-3, warmup=0.0, save_every=0, seed=0,
                    num_workers=0)
        base.update(kw)
        return TrainConfig(**base)

    return make
