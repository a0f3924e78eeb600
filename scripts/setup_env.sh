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
# tcmalloc: the benchmark's steady-state allocator (bench/README.md says why glibc's settings are not enough).
# Installed when missing and this runs as root with apt; never fatal, the benchmark falls back to glibc.
linker_cache="$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null || true)"
if [[ "$linker_cache" != *libtcmalloc_minimal.so.4* ]]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing libtcmalloc-minimal4 (the benchmark's steady-state allocator)"
    { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 \
        apt-get install -y -qq libtcmalloc-minimal4; } >/dev/null 2>&1 \
      || echo "   could not install it: the benchmark's steady state falls back to tuned glibc"
  else
    echo "== note: tcmalloc (package libtcmalloc-minimal4) not found: the benchmark falls back to tuned glibc"
  fi
fi
echo "== installing requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt"
echo "== building lossext._C"
cd "$repo"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
"$venv/bin/python" -c "import lossext; print('lossext backend:', lossext.backend())"
