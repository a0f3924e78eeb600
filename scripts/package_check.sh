#!/usr/bin/env bash
# The packaging check (CI runs it from scripts/test.sh): the sdist holds everything the build needs, a
# wheel built from it installs into a clean venv with the pinned torch and passes a smoke test, and a
# plain isolated `pip install .` stops at once with its advice instead of fetching another torch.
#   LOSSEXT_VENV   the development venv (default: .venv in the repository)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOSSEXT_VENV:-$repo/.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
step() { echo "== package check: $1 ($((SECONDS - start)) s)"; }

step "sdist"
"$venv/bin/python" -m build --sdist --no-isolation --outdir "$work/dist" "$repo" > "$work/sdist.log" 2>&1 \
  || { cat "$work/sdist.log"; exit 1; }
sdist="$(ls "$work"/dist/lossext-*.tar.gz)"
# Every file the build reads from csrc/ must be in the tarball (the sdist once held only the .cpp files).
tar -tzf "$sdist" | sed 's#^[^/]*/##' > "$work/sdist_files.txt"
missing="$(cd "$repo" && git ls-files csrc CMakeLists.txt | grep -vxF -f "$work/sdist_files.txt" || true)"
if [ -n "$missing" ]; then echo "the sdist lacks:"; echo "$missing"; exit 1; fi

step "wheel from the sdist (compiles the extension, against the installed torch)"
MAX_JOBS="${MAX_JOBS:-2}" "$venv/bin/pip" wheel --quiet --no-build-isolation --no-deps -w "$work/dist" "$sdist" \
  > "$work/wheel.log" 2>&1 || { tail -50 "$work/wheel.log"; exit 1; }
wheel="$(ls "$work"/dist/lossext-*.whl)"

step "clean venv: the pinned torch and the wheel"
python3 -m venv "$work/clean"
torch_pin="$(grep -E '^torch==' "$repo/requirements-dev.txt")"
"$work/clean/bin/pip" install --quiet "$torch_pin" numpy > "$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
"$work/clean/bin/pip" install --quiet --no-deps "$wheel"

step "smoke test of the installed wheel"
(cd "$work" && "$work/clean/bin/python" - <<'PY'
import torch
import torch.nn.functional as F

import lossext

assert lossext.backend() == "extension", lossext.backend()
assert "site-packages" in lossext.__file__, lossext.__file__
torch.manual_seed(0)
x = torch.randn(64, 1000, requires_grad=True)
t = torch.randint(0, 1000, (64,))
loss = lossext.cross_entropy(x, t, label_smoothing=0.1)
loss.backward()
x_ref = x.detach().clone().requires_grad_()
F.cross_entropy(x_ref, t, label_smoothing=0.1).backward()
torch.testing.assert_close(loss, F.cross_entropy(x_ref, t, label_smoothing=0.1))
torch.testing.assert_close(x.grad, x_ref.grad)
h = torch.randn(8, 16, requires_grad=True)
w = torch.randn(50, 16, requires_grad=True)
lossext.linear_loss("hinge", h, w, torch.randint(0, 50, (8,)), p=2.0).backward()
assert h.grad is not None and w.grad is not None
print("wheel smoke test passed:", lossext.__file__)
PY
)

step "isolated pip install stops without fetching torch"
if "$work/clean/bin/pip" install --no-deps "$repo" > "$work/isolated.log" 2>&1; then
  echo "an isolated build should have stopped"; cat "$work/isolated.log"; exit 1
fi
grep -q -- "--no-build-isolation" "$work/isolated.log" || { cat "$work/isolated.log"; exit 1; }
if grep -qi "torch-.*\.whl\|Collecting torch" "$work/isolated.log"; then
  echo "the isolated build fetched torch"; cat "$work/isolated.log"; exit 1
fi
step "done"
