#!/usr/bin/env bash
# The device run (issue 16): on a bare H100/H200 machine with a CUDA torch, nvcc and pytest (no internet),
# build lossext for sm_90 and run, in order of value, each step under its own time limit so that the
# whole run ends inside the device tool's 10 minutes:
#   1. build      FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=<cores> setup.py build_ext --inplace,
#                 skipped when a lossext/_C*.so that was built with CUDA already loads
#   2. tests      every pytest case on the cuda device (conftest.DEVICES has "cuda" when a GPU is visible),
#                 junit XML kept; not the host simulation (CI runs it)
#   3. bench      the losses' quick bench and the fused head's, on cuda only, CSVs kept
# Everything goes under $OUT (the device tool's folder; build/gpu-check here): env.txt, build.log,
# pytest.log, pytest.xml, bench.log and the bench CSVs, at most two folders down.
#
#   scripts/gpu_check.sh            on the GPU machine
#   scripts/gpu_check.sh --prepare  here, before the device run: the pure-Python packages the tests and the
#                                   bench import beyond torch and pytest (tqdm, hypothesis, mpmath) into
#                                   build/gpu-deps, which the device run puts on PYTHONPATH: name it in the
#                                   device tool's carry (build/ is ignored by git, so it does not travel
#                                   otherwise). matplotlib is not carried (binary): the bench then skips its plot.
#   scripts/gpu_check.sh --dry-run  here: every step's tools, paths and arguments checked, nothing built
#                                   for CUDA and nothing run on a GPU (pytest collects, the bench parses);
#                                   rehearse with a CUDA build of torch, PYTHON=build/venv-cuda/bin/python
#                                   (.ci/cuda_compile_check.sh makes it), in a venv without the carried
#                                   packages, as the device is
# PYTHON picks the interpreter (default python3); GPU_CHECK_BUILD_S, GPU_CHECK_TESTS_S and
# GPU_CHECK_BENCH_S the steps' limits in seconds (default 300, 150, 45 each: 540 s with the environment
# report, inside the tool's 600). A build cut off by its limit leaves ninja's objects on the machine: a
# second call at once (the machine stays warm 30 s) resumes it, and skips it once lossext._C loads.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$repo/build/gpu-check}"
python="${PYTHON:-python3}"
dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
deps="$repo/build/gpu-deps"
if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$deps"
  "$python" -m pip install --quiet --disable-pip-version-check --target "$deps" tqdm hypothesis mpmath
  echo "prepared $deps ($(du -sh "$deps" | cut -f1)): carry build/gpu-deps in the device run"
  exit 0
fi
mkdir -p "$out"
cd "$repo"
export PYTHONUNBUFFERED=1
[ -d "$deps" ] && export PYTHONPATH="$deps${PYTHONPATH:+:$PYTHONPATH}"
start=$SECONDS
failures=0

note() { echo "[$((SECONDS - start)) s] $*" | tee -a "$out/summary.txt"; }
# step NAME LIMIT LOG COMMAND...: runs COMMAND under `timeout LIMIT`, its output into $out/LOG.
step() {
  local name="$1" limit="$2" log="$3"
  shift 3
  note "$name: start (limit ${limit} s): $*"
  local step_start=$SECONDS
  timeout "$limit" "$@" > "$out/$log" 2>&1
  local rc=$?
  note "$name: rc $rc after $((SECONDS - step_start)) s (log $log)"
  [ "$rc" = 0 ] || failures=$((failures + 1))
  return "$rc"
}

{
  echo "date: $(date -u +%FT%TZ)   dry run: $dry_run   commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true
  command -v nvcc >/dev/null && nvcc --version | tail -2
  "$python" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', \
torch.version.cuda, 'gpus', torch.cuda.device_count())"
  "$python" -c "import ninja; print('ninja (python package)', ninja.__version__)" 2>/dev/null \
    || { command -v ninja >/dev/null && echo "ninja $(ninja --version)"; } || echo "no ninja: the build runs serially"
  echo "cores: $(nproc)"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

# 1. The extension, for sm_90 only, one compile job per core.
if "$python" -c "import lossext, sys; sys.exit(not (lossext.extension_loaded() and lossext._extension._C.built_with_cuda()))" \
    2>/dev/null; then
  note "build: a CUDA build of lossext._C already loads; not rebuilt"
elif [ "$dry_run" = 1 ]; then
  command -v nvcc >/dev/null || { note "build: no nvcc on PATH"; failures=$((failures + 1)); }
  "$python" -c "import torch.utils.cpp_extension as c; assert c.CUDA_HOME, 'no CUDA_HOME'" 2>>"$out/summary.txt" \
    || { note "build: torch finds no CUDA_HOME (a CPU build of torch finds none: rehearse with a CUDA torch, PYTHON=build/venv-cuda/bin/python)"; failures=$((failures + 1)); }
  note "build: dry run, would run FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=$(nproc) $python setup.py build_ext --inplace"
else
  FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="$(nproc)" \
    step build "${GPU_CHECK_BUILD_S:-300}" build.log "$python" setup.py build_ext --inplace
  "$python" -c "import lossext; print('backend', lossext.backend(), 'cuda kernels', lossext._extension._C.built_with_cuda())" \
    2>&1 | tee -a "$out/summary.txt"
fi

# 2. The test suite's CUDA cases (each test parametrised over conftest.DEVICES has a "cuda" id there).
tests=(-q -p no:cacheprovider -k "cuda and not host_simulation" --junitxml="$out/pytest.xml" tests)
if [ "$dry_run" = 1 ]; then
  step tests-collect "${GPU_CHECK_TESTS_S:-150}" pytest.log "$python" -m pytest --collect-only -q tests
else
  step tests "${GPU_CHECK_TESTS_S:-150}" pytest.log "$python" -m pytest "${tests[@]}"
fi
tail -3 "$out/pytest.log" | tee -a "$out/summary.txt"

# 3. The benches on the GPU (CUDA events), into $out/results.
bench_losses=(bench/run.py --quick --devices cuda --results-dir "$out/results")
bench_heads=(bench/run.py --family heads --quick --devices cuda --no-memory --results-dir "$out/results"
  --implementations products,lossext,unfused,torch_lce,torch_lce_chunked)
if [ "$dry_run" = 1 ]; then
  step bench-parse 60 bench.log "$python" bench/run.py --help
else
  step bench "${GPU_CHECK_BENCH_S:-45}" bench.log "$python" "${bench_losses[@]}"
  step bench-heads "${GPU_CHECK_BENCH_S:-45}" bench-heads.log "$python" "${bench_heads[@]}"
fi

note "done: $failures step(s) failed"
[ "$failures" = 0 ]
