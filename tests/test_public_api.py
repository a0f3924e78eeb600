"""The public API: every documented and exported name imports, every module imports on its own without
cycles, and every public function and module has a real signature."""

import ast
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import lossext
from lossext.activations import functional as activations_functional
from lossext.losses import functional as losses_functional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, "lossext")

# The public modules: the facades, their implementations and the modules kept under their earlier names.
FACADES = [
    "lossext",
    "lossext.functional",
    "lossext.nn",
    "lossext.reference",
    "lossext.autograd",
    "lossext.metrics",
    "lossext.activations",
    "lossext.activation_reference",
    "lossext.activation_modules",
    "lossext.distributed",
]
IMPLEMENTATIONS = [
    "lossext.losses.functional",
    "lossext.losses.reference",
    "lossext.losses.modules",
    "lossext.losses.autograd",
    "lossext.activations.functional",
    "lossext.activations.reference",
    "lossext.activations.modules",
    "lossext.distributed.losses",
    "lossext.distributed.linear",
    "lossext.distributed.dtensor",
    "lossext.distributed.modules",
]

# Each module's __all__ before the package was split into lossext.losses and lossext.activations:
# every name must still be exported (more may be added).
LOSS_FUNCTIONS = ["alpha_loss", "cauchy_schwarz", "chebyshev", "cross_entropy", "expectation", "hinge", "l1", "l2",
                  "regularized_expectation", "squared_log", "tanimoto", "two_scale_cross_entropy"]
ACTIVATION_FUNCTIONS = ["elu", "gelu", "hardtanh", "leaky_relu", "prelu", "relu", "selu", "sigmoid", "silu", "softmax",
                        "swish", "tanh"]
LOSS_MODULES = ["AlphaLoss", "CauchySchwarzLoss", "ChebyshevLoss", "ClassIndexLoss", "CrossEntropyLoss",
                "ExpectationLoss", "HingeLoss", "L1Loss", "L2Loss", "RegularizedExpectationLoss", "SquaredLogLoss",
                "TanimotoLoss", "TwoScaleCrossEntropyLoss", "parameter_norm"]
ACTIVATION_MODULES = ["ELU", "GELU", "Hardtanh", "LeakyReLU", "PReLU", "ReLU", "SELU", "SiLU", "Sigmoid", "Softmax",
                      "Swish", "Tanh"]
EARLIER_ALL = {
    "lossext": LOSS_FUNCTIONS + ACTIVATION_FUNCTIONS + [
        "activations", "autograd", "backend", "extension_loaded", "functional", "metrics", "nn", "parameter_norm",
        "reference", "set_backend", "set_gradient_mode"],
    "lossext.functional": LOSS_FUNCTIONS + ACTIVATION_FUNCTIONS,
    "lossext.reference": LOSS_FUNCTIONS + ACTIVATION_FUNCTIONS,
    "lossext.nn": LOSS_MODULES + ACTIVATION_MODULES,
    "lossext.autograd": ["AlphaLossFunction", "CauchySchwarzFunction", "ChebyshevFunction", "CrossEntropyFunction",
                         "ExpectationFunction", "HingeFunction", "L1Function", "L2Function",
                         "RegularizedExpectationFunction", "RowLossFunction", "SquaredLogFunction",
                         "TanimotoFunction"],
    "lossext.metrics": ["margin", "accuracy", "top_k_accuracy", "close_enough_accuracy", "misclassification_gap"],
    "lossext.activations": ACTIVATION_FUNCTIONS,
    "lossext.activation_reference": ACTIVATION_FUNCTIONS,
    "lossext.activation_modules": ACTIVATION_MODULES,
}


def resolve(dotted: str):
    """The object a dotted name such as lossext.nn.CrossEntropyLoss or lossext.autograd.X.apply names."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(dotted)


def readme_names():
    """The lossext.x.y names README.md mentions (torch.ops.lossext.* are ops, checked in test_op_names.py;
    private names such as lossext._C are named there only to describe the build)."""
    with open(os.path.join(REPO, "README.md")) as readme:
        names = set(re.findall(r"(?<![\w.])lossext(?:\.[A-Za-z_]\w*)+", readme.read()))
    return sorted(name for name in names if not any(part.startswith("_") for part in name.split(".")))


def test_the_readme_names_enough_to_check():
    # Guards the pattern above: the README documents at least the loss, its module, reference and backend.
    assert {"lossext.cross_entropy", "lossext.nn.CrossEntropyLoss", "lossext.reference.cross_entropy",
            "lossext.backend"} <= set(readme_names())


@pytest.mark.parametrize("name", readme_names())
def test_every_name_the_readme_documents_imports(name):
    assert resolve(name) is not None


@pytest.mark.parametrize("module_name", FACADES + IMPLEMENTATIONS)
def test_every_exported_name_imports(module_name):
    module = importlib.import_module(module_name)
    assert len(module.__all__) == len(set(module.__all__)), "a name is exported twice"
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    namespace = {}
    exec(f"from {module_name} import *", namespace)
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("module_name", sorted(EARLIER_ALL))
def test_every_earlier_public_name_is_still_exported(module_name):
    assert set(EARLIER_ALL[module_name]) <= set(importlib.import_module(module_name).__all__)


def test_the_facades_re_export_the_same_objects():
    for name in LOSS_FUNCTIONS:
        assert getattr(lossext, name) is getattr(lossext.functional, name) is getattr(losses_functional, name)
    for name in ACTIVATION_FUNCTIONS:
        assert (getattr(lossext, name) is getattr(lossext.functional, name) is getattr(lossext.activations, name)
                is getattr(activations_functional, name))
    from lossext import activation_modules, activation_reference
    for name in ACTIVATION_FUNCTIONS:
        assert getattr(activation_reference, name) is getattr(lossext.reference, name)
    for name in ACTIVATION_MODULES:
        assert getattr(activation_modules, name) is getattr(lossext.nn, name)


# ---- Every module imports on its own, and the imports between them form no cycle. ----


def lossext_modules():
    """Every module of the package, found on disk (so that a new module is checked without being listed)."""
    names = ["lossext"]
    for info in pkgutil.walk_packages([PACKAGE_DIR], prefix="lossext."):
        names.append(info.name)
    return sorted(names)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, cwd=REPO, timeout=300)


@pytest.mark.parametrize("module_name", lossext_modules())
def test_every_module_imports_on_its_own_in_a_fresh_interpreter(module_name):
    result = run_python(f"import {module_name}, lossext; print(lossext.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.path.join(PACKAGE_DIR, "__init__.py")  # this checkout, not another install


@pytest.mark.parametrize("environment", [dict(missing_extension=True), dict(LOSSEXT_BACKEND="reference")],
                         ids=["missing_extension", "forced_reference"])
def test_every_module_imports_without_the_kernels(environment):
    # sys.modules[name] = None makes `from . import _C` raise ModuleNotFoundError, as a missing build does.
    missing = environment.pop("missing_extension", False)
    modules = [name for name in lossext_modules() if name != "lossext._C"]
    result = run_python(f"""
        import importlib, sys
        if {missing}:
            sys.modules["lossext._C"] = None
        for name in {modules!r}:
            importlib.import_module(name)
        import torch, lossext
        x = torch.randn(4, 3, requires_grad=True)
        lossext.nn.HingeLoss(2.0)(x, torch.tensor([0, 1, 2, 0])).backward()
        lossext.gelu(x).sum().backward()
        print(lossext.backend(), lossext.extension_loaded())
    """, **environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "reference"
    if missing:
        assert result.stdout.split()[1] == "False"


def import_graph():
    """module -> the lossext modules it imports (including the packages an import runs the __init__ of)."""
    modules = set(lossext_modules())
    graph = {}
    for name in modules:
        path = os.path.join(REPO, *name.split("."))
        is_package = os.path.isdir(path)
        path = os.path.join(path, "__init__.py") if is_package else path + ".py"
        if not os.path.exists(path):
            continue  # the compiled lossext._C
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        with open(path) as source:
            tree = ast.parse(source.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                imported = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in imported:
                # Importing a.b.c runs the __init__ of a.b first (a package the importer is not inside of).
                parts = target.split(".")
                for end in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:end])
                    inside = name == prefix or name.startswith(prefix + ".")
                    if prefix in modules and not inside:
                        targets.add(prefix)
        graph[name] = targets
    return graph


def test_the_modules_import_each_other_without_cycles():
    graph = import_graph()
    assert graph["lossext.functional"] >= {"lossext.losses.functional", "lossext.activations.functional"}
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            raise AssertionError("import cycle: " + " -> ".join(on_path[on_path.index(module):] + [module]))
        if module in done:
            return
        on_path.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


# ---- Real signatures and docstrings. ----


def public_objects():
    """(qualified name, object) of every function and class the public modules export."""
    seen = {}
    for module_name in FACADES + IMPLEMENTATIONS:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return sorted(seen.items())


# The fused head takes the chosen loss's own keywords (issue 11's `linear_loss(loss, ..., **loss_kwargs)`):
# which ones depends on `loss`, and lossext.heads.linear binds them against that loss's real signature.
LOSS_KEYWORDS = "loss_kwargs"


def assert_named_parameters(signature: inspect.Signature, what: str) -> None:
    variadic = [p.name for p in signature.parameters.values()
                if p.kind == inspect.Parameter.VAR_POSITIONAL
                or (p.kind == inspect.Parameter.VAR_KEYWORD and p.name != LOSS_KEYWORDS)]
    assert not variadic, f"{what}{signature} takes {variadic}: name its parameters"


@pytest.mark.parametrize("name,obj", public_objects(), ids=[name for name, _ in public_objects()])
def test_public_functions_and_modules_have_real_signatures_and_docstrings(name, obj):
    assert inspect.getdoc(obj), f"{name} has no docstring"
    if inspect.isfunction(obj):
        assert_named_parameters(inspect.signature(obj), name)
    elif issubclass(obj, torch.nn.Module):
        assert_named_parameters(inspect.signature(obj), name)
        assert_named_parameters(inspect.signature(obj.forward), f"{name}.forward")
    elif issubclass(obj, torch.autograd.Function):
        if obj is lossext.autograd.RowLossFunction:
            return  # the base: each loss's Function defines forward
        parameters = list(inspect.signature(obj.forward).parameters)
        assert parameters[:3] == ["ctx", "input", "target"], name
        assert_named_parameters(inspect.signature(obj.forward), f"{name}.forward")


def parameters_after(signature: inspect.Signature, count: int):
    """(name, default) of the parameters after the first `count`."""
    return [(p.name, p.default) for p in list(signature.parameters.values())[count:]]


@pytest.mark.parametrize("function_name", LOSS_FUNCTIONS + ACTIVATION_FUNCTIONS)
def test_each_reference_takes_the_arguments_of_its_function(function_name):
    function, reference = getattr(lossext.functional, function_name), getattr(lossext.reference, function_name)
    assert parameters_after(inspect.signature(reference), 0) == parameters_after(inspect.signature(function), 0)


def test_each_loss_module_takes_its_function_arguments_after_input_and_target():
    module_classes = [getattr(lossext.nn, name) for name in LOSS_MODULES if name.endswith("Loss")]
    checked = 0
    for module_class in module_classes:
        function = getattr(module_class, "function", None)
        if module_class is lossext.nn.CrossEntropyLoss:
            function = lossext.cross_entropy
        if function is None:
            continue  # ClassIndexLoss (the base) and TwoScaleCrossEntropyLoss (its own training variants)
        expected = parameters_after(inspect.signature(function), 2)
        assert parameters_after(inspect.signature(module_class), 0) == expected, module_class.__name__
        checked += 1
    assert checked == len(LOSS_FUNCTIONS) - 1  # every loss but the two-scale one


def test_each_autograd_function_takes_its_loss_arguments():
    for function_name in LOSS_FUNCTIONS:
        if function_name == "two_scale_cross_entropy":
            continue  # it has no autograd.Function (its scales are tensors)
        class_name = "".join(part.capitalize() for part in function_name.split("_")) + "Function"
        autograd_class = getattr(lossext.autograd, class_name)
        function_parameters = list(inspect.signature(getattr(lossext, function_name)).parameters)
        assert list(inspect.signature(autograd_class.forward).parameters)[1:] == function_parameters, class_name


def test_signatures_name_the_parameters():
    assert list(inspect.signature(lossext.nn.HingeLoss).parameters) == [
        "p", "margin", "weight", "ignore_index", "reduction"]
    assert inspect.signature(lossext.nn.AlphaLoss).parameters["alpha"].default is inspect.Parameter.empty
    assert list(inspect.signature(lossext.nn.ReLU).parameters) == []
    assert list(inspect.signature(lossext.autograd.HingeFunction.forward).parameters) == [
        "ctx", "input", "target", "p", "margin", "weight", "ignore_index", "reduction"]
    assert "margin" in inspect.getdoc(lossext.nn.HingeLoss) + str(inspect.signature(lossext.nn.HingeLoss))
