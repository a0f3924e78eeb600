"""Temporary shim, to be removed once tests/test_ops.py imports lossext.losses.ops.ROW_LOSS_NAMES."""

from typing import List

from .losses.ops import ROW_LOSS_NAMES


def registered_row_losses() -> List[str]:
    """The row losses lossext._C defines ops for: lossext.losses.ops.ROW_LOSS_NAMES, sorted."""
    return sorted(ROW_LOSS_NAMES)
