"""The batched engine behind `clapper caption` and `clapper eval`: decode ahead, encode and generate in batches.

    from clapper_core.engine import Engine, EngineConfig, Work

See engine.py for the flow, pipeline.py for the decode workers, backend.py for the batched encode and
batch.py for continuous batching in the LLM.
"""

from clapper_core.engine.engine import Done, Engine, EngineConfig, EngineStats, InOrder, Work

__all__ = ["Done", "Engine", "EngineConfig", "EngineStats", "InOrder", "Work"]
