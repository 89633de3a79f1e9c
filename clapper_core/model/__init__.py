"""The Clapper model: config, TimePerceiver, model, processor, loading.

Names load lazily so that `import clapper_core.model` does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClapperConfig": "configuration_clapper",
    "visual_token_count": "configuration_clapper",
    "split_segments": "tokens",
    "TokenCosts": "tokens",
    "token_costs": "tokens",
    "TimePerceiver": "time_perceiver",
    "ClapperForConditionalGeneration": "modeling_clapper",
    "ClapperModel": "modeling_clapper",
    "ClapperProcessor": "processing_clapper",
    "LoadConfig": "loading",
    "LoadedModel": "loading",
    "load_model": "loading",
    "build_small_tokenizer": "tokenizer",
    "build_tiny_clapper": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
