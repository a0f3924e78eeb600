#!/usr/bin/env bash
# Compile check of the CUDA kernels, for machines without a GPU.
#
#   .ci/cuda_compile_check.sh [VENV]
#
# Creates VENV (default: build/venv-cuda in the repository) with a CUDA build of
# torch if it does not exist, then compiles the whole extension, CPU and CUDA
# sources, with FORCE_CUDA=1 into a scratch directory, so the in-place CPU
# build (lossext/_C*.so) and build/ are left as they were. It needs nvcc under
# CUDA_HOME (default /usr/local/cuda). Prints one PASS/FAIL line with the
# elapsed time and exits non-zero on failure, after the tail of the build log.
# Nothing is run: a GPU is needed for that (the tests skip CUDA without one).
#
# Environment: CUDA_HOME, TORCH_CUDA_ARCH_LIST (default "8.0;9.0"), MAX_JOBS.
set -uo pipefail

TORCH_VERSION="2.14.1"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/build/venv-cuda}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export FORCE_CUDA=1
unset LOSSEXT_SKIP_CUDA

START=$(date +%s)
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/lossext-cuda-check.XXXXXX")"
LOG="$SCRATCH/build.log"

finish() {  # finish STATUS MESSAGE
  local elapsed=$(( $(date +%s) - START ))
  if [ "$1" = PASS ]; then
    rm -rf "$SCRATCH"
    echo "cuda_compile_check: PASS in ${elapsed}s ($2)"
    exit 0
  fi
  echo "----- last 40 lines of $LOG -----"
  tail -n 40 "$LOG"
  echo "cuda_compile_check: FAIL in ${elapsed}s ($2; full log: $LOG)"
  exit 1
}

if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  touch "$LOG"
  finish FAIL "no nvcc at $CUDA_HOME/bin/nvcc"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with torch $TORCH_VERSION"
  python3 -m venv "$VENV" >>"$LOG" 2>&1 || finish FAIL "could not create the venv $VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' or torch.version.cuda is None)" >>"$LOG" 2>&1; then
  echo "installing torch $TORCH_VERSION (CUDA build), ninja, pybind11, numpy into $VENV"
  "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" ninja pybind11 numpy setuptools >>"$LOG" 2>&1 \
    || finish FAIL "pip install into $VENV failed"
  "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.version.cuda is None)" >>"$LOG" 2>&1 \
    || finish FAIL "torch in $VENV is not a CUDA build"
fi

echo "compiling into $SCRATCH (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)"
COMPILE_START=$(date +%s)
(cd "$REPO" && PATH="$VENV/bin:$CUDA_HOME/bin:$PATH" "$VENV/bin/python" setup.py build_ext \
  --build-temp "$SCRATCH/temp" --build-lib "$SCRATCH/lib") >>"$LOG" 2>&1 \
  || finish FAIL "compilation failed"
COMPILE_SECONDS=$(( $(date +%s) - COMPILE_START ))

# setup.py prints its configuration; a build that quietly left CUDA out is a failure here.
grep -q "WITH_CUDA=True" "$LOG" || finish FAIL "setup.py did not enable CUDA"
ls "$SCRATCH"/lib/lossext/_C*.so >/dev/null 2>&1 || finish FAIL "no lossext/_C*.so was produced"
CUDA_OBJECTS=$(find "$SCRATCH/temp" -name '*.o' -path '*/csrc/cuda/*' | wc -l)
[ "$CUDA_OBJECTS" -gt 0 ] || finish FAIL "no CUDA object files were produced"
finish PASS "compilation ${COMPILE_SECONDS}s, $CUDA_OBJECTS CUDA object file(s), archs $TORCH_CUDA_ARCH_LIST"
