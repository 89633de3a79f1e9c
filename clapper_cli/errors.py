"""Errors to exit codes, in one table.

Every command runs inside `main()`, which turns a `ClapperError` into a one-line
`Error: ...` on stderr and the exit code below. `CLAPPER_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

from clapper_core import errors as E

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# First match wins: order from specific to general.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (E.ConfigError, EXIT_USAGE),
    (E.VideoError, EXIT_FAILURE),
    (E.ModelError, EXIT_FAILURE),
    (E.DataError, EXIT_FAILURE),
    (E.ClapperError, EXIT_FAILURE),
)


def exit_code_for(exc: BaseException) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILURE


def debug_enabled() -> bool:
    return os.environ.get("CLAPPER_DEBUG", "").strip() not in ("", "0", "false", "no")


def report(exc: BaseException) -> int:
    """Print `exc` as one line on stderr (or its traceback in debug mode); return the exit code."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    else:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"Error: {message}", file=sys.stderr)
    return exit_code_for(exc)
