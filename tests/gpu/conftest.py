"""The training fixtures (a small synthetic dataset, quick configs) serve the CUDA training test too."""

from tests.train.conftest import quick_config, synth_data  # noqa: F401
