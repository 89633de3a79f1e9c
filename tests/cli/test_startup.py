"""`clapper --help`, `--version`, completion and probe must not import torch or transformers."""

import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers")
PROBE = """
import sys
from clapper_cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def imported_heavy(args, env=None) -> tuple[int, str, str]:
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=60)
    heavy = [line for line in result.stderr.splitlines() if line.startswith("HEAVY=")]
    return result.returncode, result.stdout, heavy[-1][len("HEAVY="):] if heavy else "?"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["ask", "--help"], ["caption", "--help"],
                                  ["probe", "--help"], ["config", "show"], ["completions", "generate", "bash"]])
def test_light_commands_do_not_import_torch(args):
    code, _, heavy = imported_heavy(args)
    assert code == 0 and heavy == ""


def test_completion_does_not_import_torch():
    code, out, heavy = imported_heavy([], env={"_CLAPPER_COMPLETE": "complete_bash", "COMP_WORDS": "clapper cap",
                                               "COMP_CWORD": "1"})
    assert out.split() == ["caption"] and heavy == ""


def test_probe_does_not_import_torch(tiny_video):
    code, out, heavy = imported_heavy(["probe", "--json", str(tiny_video)])
    assert code == 0 and out.strip() and heavy == ""
