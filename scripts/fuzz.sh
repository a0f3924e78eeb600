#!/usr/bin/env bash
# The fuzzer's long profile (tests/test_fuzz.py): 10,000 loss cases and 5,000 activation cases against the
# float64 references, randomly seeded (a failure prints the case and a blob that reproduces it:
# @reproduce_failure). CI runs the short profile as part of the test suite.
# Writes the result to tests/fuzz_long_result.txt (the README quotes it).
#   LOSSEXT_VENV   the environment (default: .venv in the repository; scripts/setup_env.sh makes it)
#   extra arguments go to pytest
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
cd "$repo"
log="$(mktemp)"
start=$(date +%s)
set +e
LOSSEXT_FUZZ_PROFILE=long "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
  --hypothesis-show-statistics "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
seconds=$(( $(date +%s) - start ))
{
  echo "lossext fuzzer, long profile (scripts/fuzz.sh)"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "machine: $(nproc) cores, $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)')"
  echo "wall time: ${seconds} s, pytest exit status: ${status}"
  echo "cases per test (hypothesis statistics):"
  grep -E "^tests/test_fuzz.py::|passing examples|failing examples" "$log" | sed 's/^/  /'
  echo "pytest summary: $(tail -n 1 "$log")"
} > tests/fuzz_long_result.txt
rm -f "$log"
echo "== written tests/fuzz_long_result.txt"
exit "$status"
