"""The dtype the kernels accumulate in and the references compute in, defined once for Python.

The C++ twin is the accumulation type of csrc/ (float64 for double, float for every other
floating type): half types are accumulated in fp32, so only the result is rounded to them.
"""

import torch


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32, float16 and bfloat16 are accumulated in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
