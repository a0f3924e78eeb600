#!/usr/bin/env bash
# The main job: set up, build, and print the quick benchmark table (steady
# state and default allocator environment). Extra arguments go to bench/run.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
bash "$repo/scripts/setup_env.sh"
cd "$repo"
"$venv/bin/python" bench/run.py --quick --both-envs "$@"
