"""Library log lines that say nothing a clapper user can act on, dropped at their source logger.

bitsandbytes 0.50 tries, when it is imported on a CPU with AVX-512 BF16, to fetch a faster 4-bit matmul
from the Hugging Face kernel hub; offline, or without trusting that repository, it logs a three-line
warning and uses its own CPU kernel, which clapper's 4-bit path is tested with. transformers and peft
import bitsandbytes whenever it is installed, so the warning appeared on every stage-2 training too.
Only that record is dropped: any other bitsandbytes warning still reaches the user.
"""

from __future__ import annotations

import logging

_DROPPED = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
)


class _Drop(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Attach the filters (idempotent; costs no import of the libraries themselves)."""
    for name, prefix in _DROPPED:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_Drop(prefix))
