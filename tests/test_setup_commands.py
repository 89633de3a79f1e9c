"""CI runs the README's set-up and test commands: the two must not drift apart, and the lock must pin everything."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_setup_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Set up and test"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README's 'Set up and test' section has no bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_commands():
    ci = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    commands = _readme_setup_block()
    assert commands and all(c in ci for c in commands), commands
    assert any("-c constraints.txt" in c and "--build-constraint constraints.txt" in c for c in commands)


def test_the_lock_pins_every_requirement_exactly():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and re.fullmatch(r"[\w.]+", version), line
            pins[name.lower().replace("_", "-")] = version
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]
    requirements += project["build-system"]["requires"]
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
        assert name in pins, f"{name} is required but not pinned in constraints.txt"
    assert pins["torch"] == "2.13.0"  # a plain release: CUDA builds of it satisfy the pin too
