#!/usr/bin/env bash
# The test command: set up, build, run the Python tests, build and run the
# C++ test with CMake/ctest, check the packaging, and prove the CUDA sources compile.
#   LOSSEXT_SKIP_CUDA_CHECK=1   skip the CUDA compile check (it installs a CUDA torch in its own venv)
#   extra arguments go to pytest
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
bash "$repo/scripts/setup_env.sh"
cd "$repo"

echo "== pytest"
"$venv/bin/python" -m pytest -q "$@"

echo "== CMake build and ctest (libtorch users' build)"
cmake_build="$repo/build/cmake"
mkdir -p "$repo/build"
torch_prefix="$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
cmake -S "$repo" -B "$cmake_build" -DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_BUILD_TYPE=Release \
  -DLOSSEXT_BUILD_TESTS=ON -DLOSSEXT_WITH_CUDA=OFF > "$cmake_build.log" 2>&1 || { cat "$cmake_build.log"; exit 1; }
cmake --build "$cmake_build" -j 2 >> "$cmake_build.log" 2>&1 || { cat "$cmake_build.log"; exit 1; }
ctest --test-dir "$cmake_build" --output-on-failure

echo "== packaging: sdist, a wheel from it in a clean venv, the isolated build's stop"
bash "$repo/scripts/package_check.sh"

if [ "${LOSSEXT_SKIP_CUDA_CHECK:-0}" != "1" ]; then
  echo "== CUDA compile check"
  bash "$repo/.ci/cuda_compile_check.sh"
fi
