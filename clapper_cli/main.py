"""Console entry point: run the typer app, mapping errors and Ctrl-C to exit codes."""

from __future__ import annotations

import sys

from clapper_core.errors import ClapperError

from clapper_cli.errors import EXIT_INTERRUPTED, report


def main(argv: list[str] | None = None) -> int:
    from clapper_cli.app import app

    try:
        app(args=argv, prog_name="clapper", standalone_mode=False)
    except ClapperError as exc:
        return report(exc)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # typer.Exit / usage errors carry their own code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
