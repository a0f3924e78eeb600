#!/usr/bin/env bash
# The test command: set up, build, run the Python tests, build and run the
# C++ test with CMake/ctest, check the packaging, prove the CUDA sources compile and run the CUDA
# driver's host simulation.
#   LOSSEXT_SKIP_CUDA_CHECK=1   skip the CUDA compile check and the host simulation (they install a CUDA
#                               torch in their own venv)
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
  # The CUDA driver's row phases replayed on the host (tests/test_cuda_host_simulation.py), with the CUDA
  # build of torch the check installed; the main pytest run above skips them (its torch is CPU-only).
  echo "== CUDA host simulation"
  cuda_venv="$repo/build/venv-cuda"
  "$cuda_venv/bin/python" -m pip install --quiet --disable-pip-version-check pytest hypothesis mpmath
  CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}" TORCH_EXTENSIONS_DIR="$repo/build/torch-extensions-cuda" \
    "$cuda_venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_cuda_host_simulation.py
fi
