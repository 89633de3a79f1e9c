#!/usr/bin/env bash
# Refresh constraints.txt, the tested set of versions that the README's set-up installs.
#
#   bash scripts/lock.sh            # then run the suite on the new set before committing it:
#                                   # python -m pytest -n 2 -q (in the fresh venv this script leaves behind)
#
# It resolves the newest versions that pyproject.toml's ranges allow, in a fresh virtual environment, exactly
# as a new user's `pip install` would, and pins every one of them (setuptools too: it builds the package, and
# the set-up passes the file as --build-constraint). torch is pinned as plain 2.13.0 so that a CUDA build of the
# same release satisfies it as well as the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_VERSION=26.3
venv=${LOCK_VENV:-/tmp/clapper-lock-venv}
rm -rf "$venv"
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q "pip==$PIP_VERSION"
pip install -q torch==2.13.0 -e ".[dev]"
{
  echo "# The tested set of versions for Python $(python -c 'import sys; print(*sys.version_info[:2], sep=".")'), written by scripts/lock.sh on $(date -u +%Y-%m-%d)."
  echo "# Set-up: pip install torch==2.13.0 -c constraints.txt --build-constraint constraints.txt -e \".[dev]\""
  echo "# Refresh: bash scripts/lock.sh, then run the suite before committing the new file."
  pip freeze --all --exclude-editable | grep -v -E '^(pip|clapper)==' | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins; the venv is $venv" >&2
