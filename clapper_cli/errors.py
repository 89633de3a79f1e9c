"""Errors to exit codes, in one table.

Every command runs inside `clapper_cli.main.main()`, which turns an error into a one-line
`Error: ...` on stderr and the exit code below; `CLAPPER_DEBUG=1` shows the traceback.

    0    ok
    1    failure: a video or model could not be used, a file could not be written,
         or some videos of a caption batch failed
    2    usage: a bad option, argument, setting or config file (typer's usage errors too)
    130  interrupted with Ctrl-C, after what was finished has been written
"""

from __future__ import annotations

import sys
import traceback

from clapper_core import errors as E

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# First match wins: order from specific to general.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (E.ConfigError, EXIT_USAGE),
    (E.VideoError, EXIT_FAILURE),
    (E.ModelError, EXIT_FAILURE),
    (E.DataError, EXIT_FAILURE),
    (E.ClapperError, EXIT_FAILURE),
    (OSError, EXIT_FAILURE),  # a file that cannot be written, a full disk
)

# What main() reports as the user's problem; anything else is a bug in clapper or a library, reported as an
# internal error (still one line, exit 1) unless CLAPPER_DEBUG=1 asks for the traceback.
REPORTED: tuple[type[BaseException], ...] = (E.ClapperError, OSError)
DEBUG_HINT = "set CLAPPER_DEBUG=1 for the traceback"


def exit_code_for(exc: BaseException) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILURE


def debug_enabled() -> bool:
    from clapper_core.settings import env_flag

    return env_flag("CLAPPER_DEBUG")


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__


def report(exc: BaseException) -> int:
    """Print `exc` as one line on stderr (or its traceback in debug mode); return the exit code."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    elif isinstance(exc, REPORTED):
        print(f"Error: {one_line(exc)}", file=sys.stderr, flush=True)
    else:
        text = one_line(exc)
        what = type(exc).__name__ if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
        print(f"Error: internal error: {what} ({DEBUG_HINT})", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    return exit_code_for(exc)
