#!/usr/bin/env bash
# Create (or reuse) the virtual environment and build lossext into it.
#   LOSSEXT_VENV   where the venv lives (default: .venv in the repository)
#   PYTHON         the interpreter that creates it (default: python3)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
echo "== installing requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt"
echo "== building lossext._C"
cd "$repo"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
"$venv/bin/python" -c "import lossext; print('lossext backend:', lossext.backend())"
