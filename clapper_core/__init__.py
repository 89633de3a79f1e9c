"""clapper_core: the Clapper video VLM and everything around it.

Importing this package is cheap: heavy modules (torch, transformers) load only when a
name that needs them is first used, so `clapper --help` and `clapper probe` stay fast.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from clapper_core.errors import ClapperError

try:
    __version__ = version("clapper")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

__all__ = ["ClapperError", "__version__"]
