"""`python -m tests.cli.fake_cli ARGS` = `clapper ARGS` with the stand-in model of fake_model.py."""

import sys

from tests.cli.fake_model import install

if __name__ == "__main__":
    install()
    from clapper_cli.main import main

    sys.exit(main(sys.argv[1:]))
