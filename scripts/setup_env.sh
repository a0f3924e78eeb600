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
mkdir -p "$repo/build"
echo "== installing requirements-dev.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt"
echo "== building lossext._C (ninja rebuilds only what changed: seconds when nothing did)"
cd "$repo"
start=$SECONDS
# In place, so that build/'s ninja files and objects are reused by the next run (pip's editable install
# builds in a fresh temporary directory every time: minutes). One line per compiled file.
if ! "$venv/bin/python" setup.py build_ext --inplace > "$repo/build/setup.log" 2>&1 < /dev/null; then
  tail -60 "$repo/build/setup.log"; exit 1
fi
sed -nE 's#^(\[[0-9]+/[0-9]+\]) .* -c (/[^ ]*/)?(csrc/[^ ]+) .*#   \1 \3#p' "$repo/build/setup.log"
echo "   built in $((SECONDS - start)) s"
# The repository on the venv's path: what an editable install does, without its rebuild.
site_packages="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$repo" > "$site_packages/lossext-repository.pth"
"$venv/bin/python" -c "import lossext; print('lossext backend:', lossext.backend())"
