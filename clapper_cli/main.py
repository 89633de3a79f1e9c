"""Console entry point: run the typer app, mapping errors and Ctrl-C to exit codes.

typer handles usage errors itself (a message and exit 2) and turns Ctrl-C into exit 130;
every `ClapperError` (and an `OSError` such as an unwritable output) becomes one line on
stderr through the table in `clapper_cli.errors`.
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
