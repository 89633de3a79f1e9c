"""The scripts in completions/ are what `clapper completions generate` prints, and they work."""

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clapper_cli.app import app
from clapper_cli.commands.completions import FILE_NAMES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shell", sorted(FILE_NAMES))
def test_shipped_scripts_are_up_to_date(shell):
    generated = CliRunner().invoke(app, ["completions", "generate", shell]).stdout
    shipped = (REPO / "completions" / FILE_NAMES[shell]).read_text()
    assert shipped == generated, "completions/ is stale: run `clapper completions generate --dir completions`"


def test_generate_dir_writes_every_shell(tmp_path):
    result = CliRunner().invoke(app, ["completions", "generate", "--dir", str(tmp_path)])
    assert result.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == sorted(FILE_NAMES.values())


def test_bash_script_completes_commands_and_choices(tmp_path):
    import os
    import shutil
    import sys

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "clapper").write_text(f"#!/bin/sh\nexec {sys.executable} -m clapper_cli.main \"$@\"\n")
    (bin_dir / "clapper").chmod(0o755)
    script = (REPO / "completions" / "clapper.bash").read_text()
    test = script + '\nCOMP_WORDS=(clapper caption --quant ""); COMP_CWORD=3; _clapper_completion clapper;' \
                    ' echo "${COMPREPLY[*]}"\nCOMP_WORDS=(clapper capt); COMP_CWORD=1; _clapper_completion clapper;' \
                    ' echo "${COMPREPLY[*]}"\n'
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", test], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert out.stdout.splitlines() == ["auto bf16 fp32 4bit", "caption"], out.stderr
