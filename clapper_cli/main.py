"""Console entry point: run the typer app, mapping errors and Ctrl-C to exit codes.

typer handles usage errors itself (a message and exit 2) and turns Ctrl-C into exit 130;
every `ClapperError` (and an `OSError` such as an unwritable output) becomes one line on
stderr through the table in `clapper_cli.errors`, and any other exception (a bug) becomes one
`Error: internal error: ...` line and exit 1; `CLAPPER_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import sys

from clapper_cli.errors import EXIT_INTERRUPTED, REPORTED, report


def main(argv: list[str] | None = None) -> int:
    from clapper_cli.app import app

    try:
        app(args=argv, prog_name="clapper")
    except REPORTED as exc:
        return report(exc)
    except KeyboardInterrupt:  # raised outside typer's own handling (while importing, say)
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # typer.Exit, usage errors and Ctrl-C carry their own code
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == EXIT_INTERRUPTED:
            print("Interrupted.", file=sys.stderr)
        return code
    except Exception as exc:  # a bug: one line, never a raw traceback (CLAPPER_DEBUG=1 shows it)
        return report(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
