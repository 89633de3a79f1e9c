"""The recipe's tests train too: they share the training tests' dataset and quick configs."""

from tests.train.conftest import quick_config, synth_data  # noqa: F401
