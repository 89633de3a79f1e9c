"""clapper_core: the Clapper video VLM and everything around it.

Importing this package is cheap: heavy modules (torch, transformers) load only when a
name that needs them is first used, so `clapper --help` and `clapper probe` stay fast.
"""

from __future__ import annotations

from clapper_core import quiet
from clapper_core.errors import ClapperError

quiet.install()


def __getattr__(name: str):
    # importlib.metadata costs ~30 ms at start-up: look the version up only when asked for.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("clapper")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+local"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ClapperError", "__version__"]
