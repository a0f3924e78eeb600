"""Backend selection and the fallback to the pure-PyTorch reference."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import lossext

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_backend_reports_the_extension_when_built():
    assert lossext.backend() == ("extension" if lossext.extension_loaded() else "reference")


def test_environment_variable_forces_the_reference():
    result = run_python("""
        import warnings, torch, lossext
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a forced reference is a choice, not a fallback: no warning
            x = torch.randn(4, 3, requires_grad=True)
            loss = lossext.cross_entropy(x, torch.tensor([0, 1, 2, 0]))
            loss.backward()
        print(lossext.backend(), x.grad.shape)
    """, LOSSEXT_BACKEND="reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["reference", "torch.Size([4,", "3])"]


def test_invalid_backend_variable_is_rejected():
    result = run_python("import lossext", LOSSEXT_BACKEND="gpu-magic")
    assert result.returncode != 0 and "LOSSEXT_BACKEND" in result.stderr


def test_missing_extension_falls_back_and_warns_once():
    # sys.modules[name] = None makes `from . import _C` raise ModuleNotFoundError, as a missing build does.
    result = run_python("""
        import sys, warnings
        sys.modules["lossext._C"] = None
        import torch, torch.nn.functional as F, lossext
        x, t = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = lossext.cross_entropy(x, t)
            b = lossext.cross_entropy(x, t, reduction="sum")
        assert torch.allclose(a, F.cross_entropy(x, t)) and torch.allclose(b, F.cross_entropy(x, t, reduction="sum"))
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        print(lossext.backend(), len(messages))
        print(messages[0])
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "reference 1"
    assert "lossext._C failed to load" in lines[1] and "ModuleNotFoundError" in lines[1]


def test_set_backend_switches_and_validates():
    x = torch.randn(6, 5, requires_grad=True)
    t = torch.randint(0, 5, (6,))
    results = {}
    for name in ["reference"] + (["extension"] if lossext.extension_loaded() else []):
        lossext.set_backend(name)
        try:
            loss = lossext.cross_entropy(x, t)
            (grad,) = torch.autograd.grad(loss, x)
            results[name] = (loss.detach(), grad)
            assert lossext.backend() == name
        finally:
            lossext.set_backend(None)
    for loss, grad in results.values():
        torch.testing.assert_close(loss, F.cross_entropy(x, t))
    with pytest.raises(ValueError, match="backend"):
        lossext.set_backend("fastest")


class TestBadInput:
    """Every rejection is a Python exception of F.cross_entropy's type whose message names the problem."""

    @pytest.fixture(autouse=True)
    def _both_backends(self, backend):
        self.backend = backend

    def check(self, exception, match, *args, **kwargs):
        with pytest.raises(exception, match=match):
            lossext.cross_entropy(*args, **kwargs)
        with pytest.raises(exception):
            F.cross_entropy(*args, **kwargs)

    def test_batch_size_mismatch(self):
        self.check(ValueError, "batch_size", torch.randn(4, 5), torch.tensor([0, 1, 2]))

    def test_k_dimensional_target_shape(self):
        self.check(RuntimeError, "target size", torch.randn(2, 3, 4), torch.zeros(2, 5, dtype=torch.long))

    def test_target_out_of_range(self):
        self.check(IndexError, "out of bounds", torch.randn(4, 5), torch.tensor([0, 1, 5, 3]))
        self.check(IndexError, "out of bounds", torch.randn(4, 5), torch.tensor([0, -1, 2, 3]))

    def test_target_dtype(self):
        self.check(RuntimeError, "target", torch.randn(4, 5), torch.tensor([0.0, 1.0, 2.0, 3.0]))
        self.check(RuntimeError, "target", torch.randn(4, 5), torch.tensor([0, 1, 2, 3], dtype=torch.int16))

    def test_input_dtype(self):
        self.check(NotImplementedError, "input", torch.randint(0, 3, (4, 5)), torch.tensor([0, 1, 2, 3]))

    def test_weight_shape_and_dtype(self):
        self.check(RuntimeError, "weight", torch.randn(4, 5), torch.tensor([0, 1, 2, 3]), weight=torch.ones(3))
        self.check(RuntimeError, "weight", torch.randn(4, 5), torch.tensor([0, 1, 2, 3]),
                   weight=torch.ones(5, dtype=torch.float64))

    def test_reduction_and_label_smoothing(self):
        self.check(ValueError, "reduction", torch.randn(4, 5), torch.tensor([0, 1, 2, 3]), reduction="avg")
        self.check(RuntimeError, "label_smoothing", torch.randn(4, 5), torch.tensor([0, 1, 2, 3]),
                   label_smoothing=1.5)

    def test_probability_target(self):
        self.check(RuntimeError, "ignore_index", torch.randn(4, 5), torch.rand(4, 5), ignore_index=1)
        # A float target of another shape is neither: the message gives both shapes.
        self.check(RuntimeError, r"target must hold class indices .* or class probabilities of the input's shape "
                                 r"\[4, 5\]; got torch.float32 of shape \[4, 6\]", torch.randn(4, 5), torch.rand(4, 6))

    def test_mixed_devices(self):
        # "meta" stands in for a second device on a machine without a GPU.
        with pytest.raises(RuntimeError, match="device"):
            lossext.cross_entropy(torch.randn(4, 5), torch.zeros(4, dtype=torch.long, device="meta"))
        with pytest.raises(RuntimeError, match="device"):
            lossext.cross_entropy(torch.randn(4, 5), torch.zeros(4, dtype=torch.long),
                                  weight=torch.ones(5, device="meta"))

    def test_scalar_input(self):
        with pytest.raises(ValueError, match="class dimension"):
            lossext.cross_entropy(torch.tensor(1.0), torch.tensor(0))


@pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")
class TestOpArgumentChecks:
    """The ops check their own arguments too, for callers of torch.ops.lossext directly."""

    def test_messages_name_the_argument(self):
        ops = torch.ops.lossext
        x, t = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
        p = [0.0, 0.0, 0.0]  # label_smoothing, z_loss, logit_softcap
        cases = [
            (lambda: ops.cross_entropy_forward(x[0], t, None, p, None, -100, 1, False), "input must be 2-D"),
            (lambda: ops.cross_entropy_forward(x, t[:3], None, p, None, -100, 1, False), "target must have shape"),
            (lambda: ops.cross_entropy_forward(x, t.float(), None, p, None, -100, 1, False), "target must hold"),
            (lambda: ops.cross_entropy_forward(x, t, torch.ones(4), p, None, -100, 1, False), "weight must have"),
            (lambda: ops.cross_entropy_forward(x, t, None, [], None, -100, 1, False), "params"),
            (lambda: ops.cross_entropy_forward(x, t, None, p, None, -100, 7, False), "reduction"),
            (lambda: ops.cross_entropy_forward_out(x, t, None, p, None, -100, 1, torch.empty(5, 4)), "grad_input"),
            (lambda: ops.cross_entropy_backward(torch.ones(3), x, t, None, p, None, -100, 0), "grad_output"),
        ]
        for call, message in cases:
            with pytest.raises(RuntimeError, match=message):
                call()
