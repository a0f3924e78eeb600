"""The op lists: lossext.losses.ops.ROW_LOSS_NAMES (lossext._C's) against the references and the schemas,
lossext.activations.ops.ACTIVATION_NAMES against the C++ list."""

import pytest
import torch

import lossext
from lossext.activations.ops import ACTIVATION_NAMES
from lossext.losses import reference as loss_references
from lossext.losses.ops import ROW_LOSS_NAMES

pytestmark = pytest.mark.skipif(not lossext.extension_loaded(), reason="lossext._C is not built")


def lossext_schemas():
    """op name (without the lossext:: namespace) -> its JIT schema, for every op lossext._C registers."""
    prefix = "lossext::"
    return {schema.name[len(prefix):]: schema for schema in torch._C._jit_get_all_schemas()
            if schema.name.startswith(prefix)}


def forward_names_taking(schemas, first_arguments):
    """The <name> of every <name>_forward op whose arguments start with `first_arguments`."""
    suffix = "_forward"
    return {name[: -len(suffix)] for name, schema in schemas.items()
            if name.endswith(suffix) and [a.name for a in schema.arguments[: len(first_arguments)]] == first_arguments}


def test_the_lists_have_no_repeats():
    assert len(set(ROW_LOSS_NAMES)) == len(ROW_LOSS_NAMES)
    assert len(set(ACTIVATION_NAMES)) == len(ACTIVATION_NAMES)
    assert not set(ROW_LOSS_NAMES) & set(ACTIVATION_NAMES)


def test_the_row_loss_list_is_every_reference_loss_and_its_schemas():
    # ROW_LOSS_NAMES is lossext._C's list: each loss of it has a reference (cross_entropy_probabilities is
    # cross_entropy's op for probability targets), and the ops taking (input, target, ...) are these.
    assert set(ROW_LOSS_NAMES) == set(loss_references.__all__) | {"cross_entropy_probabilities"}
    assert set(ROW_LOSS_NAMES) == forward_names_taking(lossext_schemas(), ["input", "target"])


def test_the_activation_list_is_the_cpp_list():
    if hasattr(lossext._C, "activation_names"):
        assert tuple(lossext._C.activation_names()) == ACTIVATION_NAMES
    else:
        schemas = lossext_schemas()
        activations = forward_names_taking(schemas, ["input"]) - forward_names_taking(schemas, ["input", "target"])
        assert set(ACTIVATION_NAMES) == activations


def test_every_listed_op_is_registered():
    schemas = lossext_schemas()
    for name in ROW_LOSS_NAMES:
        assert {f"{name}_forward", f"{name}_forward_out", f"{name}_backward"} <= set(schemas), name
    for name in ACTIVATION_NAMES:
        assert {f"{name}_forward", f"{name}_backward"} <= set(schemas), name


def test_every_forward_op_is_in_a_list():
    forward_ops = {name[: -len("_forward")] for name in lossext_schemas() if name.endswith("_forward")}
    fused_heads = {f"{name}_linear" for name in ROW_LOSS_NAMES}  # <loss>_linear_forward (lossext.heads.linear)
    assert forward_ops == set(ROW_LOSS_NAMES) | set(ACTIVATION_NAMES) | fused_heads
