#!/usr/bin/env bash
# Build lossext._C with AddressSanitizer and UndefinedBehaviorSanitizer in a scratch copy of the working tree,
# then run the fuzzer's short profile and the bad-input tests against that build.
#   LOSSEXT_VENV           the environment (default: .venv in the repository)
#   LOSSEXT_SANITIZE_DIR   the scratch directory (default: a new one under /tmp; removed at the end unless given)
#   extra arguments go to pytest
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
scratch="${LOSSEXT_SANITIZE_DIR:-}"
if [ -z "$scratch" ]; then
  scratch="$(mktemp -d /tmp/lossext-sanitize.XXXXXX)"
  trap 'rm -rf "$scratch"' EXIT
fi
mkdir -p "$scratch"
echo "== copying the working tree to $scratch"
(cd "$repo" && tar --exclude=./.git --exclude=./build --exclude=./.venv --exclude='*.so' --exclude=__pycache__ \
  -cf - .) | tar -xf - -C "$scratch"

# The build machine's vector ISA (as setup.py chooses it), plus the sanitizers. Not -fsanitize=vptr: its checks of
# dynamic types across libraries built without it (libtorch) report false positives.
flags="-g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined"
cpu="$(grep -m1 '^flags' /proc/cpuinfo || true)"
if [[ "$cpu" == *" avx2 "* && "$cpu" == *" fma "* && "$cpu" == *" f16c "* ]]; then
  flags="$flags -mavx2 -mfma -mf16c"
  if [[ "$cpu" == *" avx512f "* && "$cpu" == *" avx512bw "* && "$cpu" == *" avx512vl "* && "$cpu" == *" avx512dq "* ]]; then
    flags="$flags -mavx512f -mavx512bw -mavx512vl -mavx512dq"
  fi
fi
echo "== building lossext._C with: $flags"
start=$(date +%s)
(cd "$scratch" && LOSSEXT_SKIP_CUDA=1 LOSSEXT_CPU_FLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
  MAX_JOBS="${MAX_JOBS:-2}" "$venv/bin/python" setup.py build_ext --inplace > build.log 2>&1) \
  || { tail -n 40 "$scratch/build.log"; exit 1; }
echo "   built in $(( $(date +%s) - start )) s"

# The sanitizer runtimes must be loaded before Python's own allocations; leaks are not checked (the
# interpreter and libtorch keep memory until exit by design).
preload="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export LD_PRELOAD="$preload"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$scratch"
# The tests must run the instrumented kernels: lossext falls back to the reference (with a warning) when _C fails
# to load, and the fuzzer's tests would then be skipped.
"$venv/bin/python" -c "import lossext, sys; print('   lossext from', lossext.__file__); sys.exit(not lossext.extension_loaded())" \
  || { echo "lossext._C did not load under the sanitizers"; exit 1; }
echo "== pytest under ASan+UBSan: the fuzzer's short profile and the bad-input tests"
start=$(date +%s)
LOSSEXT_FUZZ_PROFILE=ci "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_fuzz.py tests/test_bad_input.py \
  "tests/test_backends.py::TestBadInput" "$@"
echo "== clean: no sanitizer report; tests took $(( $(date +%s) - start )) s"
